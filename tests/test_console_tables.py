"""The model's tables at scale and at the edges: totals taken from the
records' own groupings agree with totals summed from the rows' records,
incomplete pools read as zero, and a state seen twice keeps its rates."""
from __future__ import annotations

from typing import Any

import pytest

from connmon_agent.console.filters import RowFilter
from connmon_agent.console.model import Model
from connmon_agent.console.settings import Thresholds, ViewSpec
from test_console_model import MYSQL, PG, T0, fleet, make_pool, make_process, make_state

VIEWS = ("program", "host", "database", "process", "pool")
FIGURES = ("hosts", "processes", "fresh", "pools", "connections", "checked_out", "idle", "waiters",
           "rate", "longest")


def mixed_fleet(at: float = T0, scale: int = 1) -> dict[str, Any]:
    """``fleet`` plus a process without pools, one with a pool on each
    database, and a stale one."""
    s = fleet(at, scale)
    procs = s["processes"] + [
        make_process("web3", 301, "cron", []),
        make_process("web3", 302, "worker", [make_pool("1", MYSQL, out=1, idle=1, checkouts=3 * scale),
                                              make_pool("2", PG, out=2, idle=0, checkouts=9 * scale,
                                                        ages=(7.0,))]),
        make_process("web3", 303, "worker", [make_pool("1", PG, out=0, idle=2)], age=9.0),
    ]
    return make_state(procs, at)


def figures(row: Any) -> tuple:
    return tuple(getattr(row, f, None) for f in FIGURES)


@pytest.mark.parametrize("view", VIEWS)
@pytest.mark.parametrize("group", [None, "host", "database"])
def test_totals_and_database_lines_agree_however_they_are_summed(view: str, group: str | None) -> None:
    m = Model()
    m.ingest(mixed_fleet(T0))
    m.ingest(mixed_fleet(T0 + 2, scale=3))
    whole = m.table(ViewSpec(view=view, group=group))
    # A filter that keeps everything takes the other path (rows summed from
    # the filtered records rather than from the records' own groupings).
    everything = m.table(ViewSpec(view=view, group=group, filter=RowFilter.parse(".")))
    assert figures(whole.totals) == figures(everything.totals)
    assert [figures(d) for d in whole.databases] == [figures(d) for d in everything.databases]
    assert [(r.kind, r.key, figures(r)) for r in whole.rows] == \
        [(r.kind, r.key, figures(r)) for r in everything.rows]
    poolless_counted = view not in ("database", "pool") and group != "database"
    assert whole.totals.processes == (7 if poolless_counted else 6)
    assert whole.totals.connections == 16 + 2 + 2 + 2


def test_rows_of_one_record_and_of_many_show_the_same_figures() -> None:
    m = Model()
    m.ingest(mixed_fleet(T0))
    m.ingest(mixed_fleet(T0 + 2, scale=3))
    procs = {r.pid: r for r in m.table(ViewSpec(view="process")).rows}
    pools = m.table(ViewSpec(view="pool")).rows
    for pid, row in procs.items():
        mine = [p for p in pools if p.pid == pid]
        assert row.pools == len(mine)
        assert row.connections == sum(p.connections for p in mine)
        assert row.rate == pytest.approx(sum(p.rate for p in mine))
        assert row.longest == max((p.longest for p in mine), default=0.0)
    assert procs[302].rate == pytest.approx((6 + 18) / 2)   # two pools, summed
    assert procs[301].pools == 0 and procs[301].connections == 0 and procs[301].processes == 1
    assert procs[303].stale and not procs[302].stale


def test_incomplete_pools_read_as_zero() -> None:
    pool = make_pool("1", MYSQL, out=1, idle=1, checkouts=5, ages=(2.0,))
    del pool["gauges"]["waiters"], pool["counters"], pool["checkouts"][0]["age"]
    bare = {"id": "2", "name": "Engine(x)", "target": PG}
    procs = [dict(make_process("web1", pid, "app", []), pools=[p]) for pid, p in ((1, pool), (2, bare))]
    m = Model()
    m.ingest({"generated_at": T0, "processes": procs})   # only what the console reads
    rows = {r.pid: r for r in m.table(ViewSpec(view="pool")).rows}
    assert (rows[1].connections, rows[1].waiters, rows[1].longest) == (2, 0, 0.0)
    assert (rows[2].connections, rows[2].capacity, rows[2].fullest) == (0, None, None)
    # A process missing its identity fields is shown under "?" rather than lost.
    m.ingest({"generated_at": T0 + 1, "processes": [{"pid": 7, "pools": [make_pool("1", MYSQL, out=1)]}]})
    row, = m.table(ViewSpec(view="process")).rows
    assert (row.host, row.program, row.pid, row.connections, row.stale) == ("?", "?", 7, 1, False)


def test_a_state_seen_twice_keeps_its_rates() -> None:
    m = Model(Thresholds())
    m.ingest(fleet(T0))
    m.ingest(fleet(T0 + 2.0, scale=2))
    again = fleet(T0 + 2.0, scale=2)
    m.ingest(again)
    assert [r.rate for r in m.table(ViewSpec(view="process", sort="pid")).rows] == [50.0, 25.0, 8.5, 0.0]
    m.ingest(fleet(T0 + 4.0, scale=3))   # rates from the sample of T0 + 2
    assert [r.rate for r in m.table(ViewSpec(view="process", sort="pid")).rows] == [50.0, 25.0, 8.5, 0.0]


def test_an_older_table_does_not_change_when_new_states_arrive() -> None:
    m = Model()
    m.ingest(fleet(T0))
    old = m.table(ViewSpec(view="pool", sort="pid"))
    before = [figures(r) for r in old.rows]
    s = fleet(T0 + 1, scale=5)
    for p in s["processes"]:
        for pool in p["pools"]:
            pool["gauges"].update(checked_out=9, connections=9)
    m.ingest(s)
    assert [figures(r) for r in old.rows] == before
    assert all(r.checked_out == 9 for r in m.table(ViewSpec(view="pool")).rows)
