"""The console's model: states (the documented Status JSON) in, rows out."""
from __future__ import annotations

from typing import Any

import pytest

from connmon_agent.console.columns import layout, COLUMNS
from connmon_agent.console.filters import RowFilter
from connmon_agent.console.history import History
from connmon_agent.console.model import Model, scope_of
from connmon_agent.console.records import pool_capacity
from connmon_agent.console.settings import Thresholds, ViewSpec
from connmon_agent.console.sparkline import sparkline
from connmon_agent.errors import ConfigError
from connmon_agent.protocol import COUNTERS, GAUGES, validate_report

T0 = 1763700000.0


def make_pool(pid: str = "1", target: str = "mysql+pymysql://nova@db:3306/nova", *, out: int = 0,
              idle: int = 0, size: int = 5, overflow: int = 10, checkouts: int = 0,
              ages: tuple[float, ...] = (), holder: str = "MainThread", kind: str = "thread",
              where: str | None = "app.py:12 in handler", cls: str = "QueuePool",
              name: str | None = None) -> dict[str, Any]:
    """One POOL object exactly as a report carries it (validated below)."""
    gauges = {g: 0 for g in GAUGES}
    gauges.update(checked_out=out, checked_in=idle, connections=out + idle,
                  overflow=max(0, out + idle - size))
    counters = {c: 0 for c in COUNTERS}
    counters.update(checkouts=checkouts, checkins=max(0, checkouts - out))
    return {
        "id": pid,
        "name": name or f"Engine({target})",
        "target": target,
        "config": {"class": cls, "size": size, "max_overflow": overflow, "timeout": 30.0,
                   "recycle": -1, "pre_ping": False},
        "gauges": gauges,
        "counters": counters,
        "wait": {"sum": 0.002, "max": 0.001},
        "checkouts": [{"id": i + 1, "age": a, "holder": holder, "kind": kind, "where": where}
                      for i, a in enumerate(ages)],
        "checkouts_total": len(ages),
        "hold": {"bounds": [0.001, 0.01, 0.1, 1.0, 10.0], "counts": [5, 10, 3, 1, 0, 1],
                 "sum": 1.5, "count": 20},
    }


def make_process(host: str, pid: int, program: str, pools: list[dict[str, Any]],
                 age: float = 0.2) -> dict[str, Any]:
    validate_report({"t": "report", "seq": 1, "full": True, "program": program, "pools": pools})
    return {"host": host, "pid": pid, "program": program, "started": T0 - 1000 + pid,
            "last_report_age": age, "dropped": 0, "pools": pools}


def _rollup(procs: list[dict[str, Any]]) -> dict[str, Any]:
    gauges = {g: sum(p["gauges"][g] for pr in procs for p in pr["pools"]) for g in GAUGES}
    counters = {c: sum(p["counters"][c] for pr in procs for p in pr["pools"]) for c in COUNTERS}
    return {"processes": len(procs), "pools": sum(len(p["pools"]) for p in procs),
            "capacity": None, "gauges": gauges, "counters": counters, "longest_checkout": 0}


def make_state(processes: list[dict[str, Any]], at: float = T0,
               stale_hosts: tuple[str, ...] = ()) -> dict[str, Any]:
    """A state message body with every documented top-level key."""
    hosts = sorted({p["host"] for p in processes})
    programs = sorted({(p["host"], p["program"]) for p in processes})
    targets = sorted({pool["target"] for p in processes for pool in p["pools"]})
    procs = sorted(processes, key=lambda p: (p["host"], p["program"], p["pid"]))
    return {
        "schema": 1,
        "generated_at": at,
        "agent": {"host": hosts[0] if hosts else "web1", "pid": 4242, "version": "0.1.0",
                  "socket": "/tmp/x/agent.sock", "uptime": 12.5,
                  "stats": {"clients": len(procs), "reports": 120, "bad_frames": 0,
                            "rejected": 0, "dropped_by_clients": 0}},
        "totals": _rollup(procs),
        # As the agent does: a host is heard when its newest report came.
        "hosts": [dict(_rollup([p for p in procs if p["host"] == h]), host=h,
                       last_heard_age=9.0 if h in stale_hosts else
                       min(p["last_report_age"] for p in procs if p["host"] == h),
                       stale=h in stale_hosts)
                  for h in hosts],
        "programs": [dict(_rollup([p for p in procs if (p["host"], p["program"]) == hp]),
                          host=hp[0], program=hp[1]) for hp in programs],
        "databases": [dict(_rollup([p for p in procs if any(q["target"] == t for q in p["pools"])]),
                           target=t) for t in targets],
        "processes": procs,
    }


MYSQL = "mysql+pymysql://nova@db:3306/nova"
PG = "postgresql+psycopg2://app@pg:5432/app"


def fleet(at: float = T0, scale: int = 1, **kw: Any) -> dict[str, Any]:
    """Two hosts, three programs, two databases; ``scale`` multiplies checkouts."""
    procs = [
        make_process("web1", 101, "nova-api", [make_pool("1", MYSQL, out=2, idle=3, checkouts=100 * scale,
                                                          ages=(0.5, 12.0))]),
        make_process("web1", 102, "nova-api", [make_pool("1", MYSQL, out=0, idle=4, checkouts=50 * scale)]),
        make_process("web1", 103, "worker", [make_pool("1", MYSQL, out=1, idle=0, checkouts=10 * scale,
                                                        ages=(40.0,)),
                                              make_pool("2", PG, out=5, idle=0, size=5, overflow=0,
                                                        checkouts=7 * scale, ages=(1, 2, 3, 4, 5))]),
        make_process("web2", 201, "nova-api", [make_pool("1", MYSQL, out=0, idle=1, checkouts=1)], age=8.0),
    ]
    return make_state(procs, at, **kw)


def test_program_view_rows_match_the_originals_columns() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="program", sort="host"))
    got = [(r.host, r.program, r.processes, r.pools, r.connections, r.checked_out, r.idle) for r in t.rows]
    assert got == [
        ("web1", "nova-api", 2, 2, 9, 2, 7),
        ("web1", "worker", 1, 2, 6, 6, 0),
        ("web2", "nova-api", 1, 1, 1, 0, 1),
    ]
    assert (t.totals.hosts, t.totals.processes, t.totals.pools, t.totals.connections,
            t.totals.checked_out, t.totals.idle) == (2, 4, 5, 16, 8, 8)
    # Totals agree with the agent's own roll-up when nothing is filtered.
    s = fleet()
    assert t.totals.connections == s["totals"]["gauges"]["connections"]


def test_rates_come_from_counter_deltas_between_states() -> None:
    m = Model()
    m.ingest(fleet(T0))
    assert m.table(ViewSpec()).totals.rate == 0
    m.ingest(fleet(T0 + 2.0, scale=2))
    t = m.table(ViewSpec(view="process", sort="pid"))
    assert [r.rate for r in t.rows] == [50.0, 25.0, 8.5, 0.0]
    # A counter that went back (a restarted process) gives no negative rate.
    m.ingest(fleet(T0 + 3.0, scale=1))
    assert all(r.rate == 0 for r in m.table(ViewSpec(view="process")).rows)


def test_database_view_and_capacity() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="database", sort="target"))
    assert [(r.target, r.processes, r.connections, r.capacity) for r in t.rows] == [
        (MYSQL, 4, 11, 60),
        (PG, 1, 5, 5),
    ]
    assert [r.fullest for r in t.rows] == [pytest.approx(2 / 15), 1.0]
    assert [(d.target, d.connections, d.capacity) for d in t.databases] == [(MYSQL, 11, 60), (PG, 5, 5)]


def test_capacity_is_unbounded_for_nullpool_and_negative_overflow() -> None:
    assert pool_capacity({"class": "QueuePool", "size": 5, "max_overflow": 10}) == 15
    assert pool_capacity({"class": "QueuePool", "size": 5, "max_overflow": -1}) is None
    assert pool_capacity({"class": "NullPool", "size": 5}) is None
    assert pool_capacity({}) is None


def test_sorting_by_any_column_and_reverse() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="process", sort="checked_out"))
    assert [r.pid for r in t.rows] == [103, 101, 102, 201]
    assert t.sort.field == "checked_out" and t.reverse is True
    t = m.table(ViewSpec(view="process", sort="U", reverse=True))
    assert [r.pid for r in t.rows] == [102, 201, 101, 103]
    t = m.table(ViewSpec(view="process", sort="longest"))
    assert [r.pid for r in t.rows][:2] == [103, 101]


def test_regex_filter_per_field_and_inverted() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="process", sort="pid", filter=RowFilter.parse("^web2")))
    assert [r.pid for r in t.rows] == [201]
    t = m.table(ViewSpec(view="process", sort="pid", filter=RowFilter.parse("!^web2")))
    assert [r.pid for r in t.rows] == [101, 102, 103]
    # db: narrows to the pools on that database; the worker's numbers shrink too.
    t = m.table(ViewSpec(view="program", sort="host", filter=RowFilter.parse("db:postgres")))
    assert [(r.program, r.connections) for r in t.rows] == [("worker", 5)]
    assert t.totals.connections == 5 and t.totals.processes == 1
    # Smart case: a capital letter makes the term case-sensitive.
    assert not m.table(ViewSpec(view="program", filter=RowFilter.parse("NOVA"))).rows
    assert m.table(ViewSpec(view="program", filter=RowFilter.parse("NOVA").inverse())).rows
    with pytest.raises(ConfigError, match="bad filter"):
        RowFilter.parse("web(")


def test_hide_idle_counts_only_pools_holding_connections() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="process", sort="pid", hide_idle=True))
    assert [r.pid for r in t.rows] == [101, 103]
    assert t.totals.processes == 2 and t.totals.idle == 3


def test_grouping_inserts_group_rows_with_subtotals() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="process", sort="pid", group="database"))
    got = [(r.kind, r.group, r.pid, r.connections) for r in t.rows]
    assert got == [
        ("group", MYSQL, None, 11), ("row", MYSQL, 101, 5), ("row", MYSQL, 102, 4),
        ("row", MYSQL, 103, 1), ("row", MYSQL, 201, 1),
        ("group", PG, None, 5), ("row", PG, 103, 5),
    ]
    assert t.rows[0].processes == 4
    t = m.table(ViewSpec(view="program", group="host"))
    assert [(r.kind, r.group) for r in t.rows] == [
        ("group", "web1"), ("row", "web1"), ("row", "web1"), ("group", "web2"), ("row", "web2")]


def test_drill_down_scope_narrows_the_pool_view() -> None:
    m = Model()
    m.ingest(fleet())
    spec = ViewSpec(view="program", sort="host")
    t = m.table(spec)
    worker = t.rows[1]
    pools = m.table(ViewSpec(view="pool", scope=scope_of(spec, worker), sort="name"))
    assert [(r.pid, r.target) for r in pools.rows] == [(103, MYSQL), (103, PG)]
    rec = m.pool(pools.rows[0].key)
    assert rec is not None and rec.pool["checkouts"][0]["age"] == 40.0


def test_stale_processes_are_marked_then_dropped() -> None:
    m = Model(Thresholds(stale_after=5.0, drop_after=60.0))
    m.ingest(fleet())
    t = m.table(ViewSpec(view="host", sort="host"))
    assert [(r.host, r.stale) for r in t.rows] == [("web1", False), ("web2", True)]
    # A host the agent marks stale is stale whatever its processes' ages.
    m.ingest(fleet(T0 + 1, stale_hosts=("web1",)))
    assert all(r.stale for r in m.table(ViewSpec(view="host")).rows)
    s = fleet(T0 + 2)
    s["processes"][-1]["last_report_age"] = 61.0
    s["hosts"][-1]["last_heard_age"] = 61.0
    m.ingest(s)
    assert [r.host for r in m.table(ViewSpec(view="host")).rows] == ["web1"]
    # A host still heard from whose processes are all gone keeps its row.
    s["hosts"][-1]["last_heard_age"] = 0.5
    m.ingest(s)
    t = m.table(ViewSpec(view="host", sort="host"))
    assert [(r.host, r.processes, r.stale) for r in t.rows] == [("web1", 3, False), ("web2", 0, False)]


def test_history_keeps_the_peak_of_each_slot_and_forgets_old_rows() -> None:
    h = History(window=60, slots=6)   # 10 s slots
    h.record(T0, {"x": {"a": 1, "b": 5}})
    h.record(T0 + 1, {"x": {"a": 3}})
    h.record(T0 + 25, {"x": {"a": 2}})
    assert h.values(("x", "a")) == [3, None, 2]
    assert h.values(("x", "b")) == [5, None, None]
    assert h.values(("y", "a")) == []
    h.record(T0 + 100, {"x": {"a": 1}})
    assert h.values(("x", "b")) == [] and len(h) == 1
    assert len(h.values(("x", "a"))) == 6 and h.values(("x", "a"))[-1] == 1


def test_model_records_history_for_every_view() -> None:
    m = Model(history=History(window=10, slots=10))
    for i in range(3):
        m.ingest(fleet(T0 + i))
    for view in ("program", "host", "database", "process", "pool"):
        rows = m.table(ViewSpec(view=view)).rows
        assert rows and all(len(m.history_of(r)) == 3 for r in rows), view
    # Group rows and rows split by a grouping have their own series.
    t = m.table(ViewSpec(view="process", group="database"))
    m.ingest(fleet(T0 + 3))
    t = m.table(ViewSpec(view="process", group="database"))
    assert [m.history_of(r)[-1] for r in t.rows] == [3, 2, 0, 1, 0, 5, 5]


def test_maxima_since_start_reset_when_what_is_shown_changes() -> None:
    m = Model()
    m.ingest(fleet(T0))
    m.table(ViewSpec())
    s = fleet(T0 + 1)
    for p in s["processes"]:
        for pool in p["pools"]:
            pool["gauges"]["connections"] = 0
    m.ingest(s)
    t = m.table(ViewSpec())
    assert t.totals.connections == 0 and t.maxima["connections"] == 16
    t = m.table(ViewSpec(filter=RowFilter.parse("worker")))
    assert t.maxima["connections"] == 0


def test_sparkline_scales_and_pads() -> None:
    assert sparkline([0, 1, 2, 4, None, 8], 8) == "   ▁▂▄ █"
    assert sparkline([1], 3) == "  █"
    assert sparkline([], 4) == "    "


def test_layout_fits_80_columns_and_grows_names() -> None:
    for view, cols in COLUMNS.items():
        w80 = layout(cols, 80)
        assert sum(w80) + len([w for w in w80 if w]) - 1 <= 80, view
        w200 = layout(cols, 200)
        assert sum(w200) + len(w200) - 1 <= 200 and w200[0] > w80[0], view


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ConfigError, match="limit-warn"):
        Thresholds(limit_warn=1.5)
    with pytest.raises(ConfigError, match="hold-crit"):
        Thresholds(hold_warn=10, hold_crit=5)
    with pytest.raises(ConfigError, match="unknown view"):
        ViewSpec(view="nope")
