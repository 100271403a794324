"""Delta reports in the agent's registry: what a delta record leaves out is
kept (and its checkout ages go on growing), what cannot be merged is ignored
and counted, and full plus deltas from the real client's report builder
rebuild exactly what one full report says. In-process, real objects; the
clock is the ``now`` handed to the registry."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent_reporters import pool
from client_helpers import clean_client  # noqa: F401  (fixture)
from connmon_agent import protocol
from connmon_agent.agent.registry import ProcessRecord, Registry
from connmon_agent.client import instrument, runtime
from connmon_agent.client.reporter import Channel
from connmon_agent.errors import ProtocolError

AGENT = {"host": "h", "pid": 1, "version": "0", "socket": "s", "uptime": 0.0, "stats": {}}
HELD = {"id": 7, "age": 1.0, "holder": "GET /slow", "kind": "request", "thread": "T-1", "where": "app.py:3 in slow"}


def report(pools: list[dict[str, Any]], full: bool = False, seq: int = 1, **fields: Any) -> dict[str, Any]:
    """A report as the agent gets it: through the wire and validated."""
    msg = {"t": "report", "seq": seq, "full": full, "pools": pools, **fields}
    (wire,) = protocol.iter_frames(protocol.encode(msg))
    return protocol.validate_report(wire)


def tracked(reg: Registry) -> ProcessRecord:
    rec = ProcessRecord("h", 1, 0.0, None, "p")
    reg.register(rec)
    return rec


def pools_at(reg: Registry, now: float) -> dict[str, dict[str, Any]]:
    """The process's POOL objects of the status JSON at monotonic ``now``."""
    (proc,) = reg.build(AGENT, now, 0.0)["processes"]
    return {p["id"]: p for p in proc["pools"]}


def test_a_delta_record_carries_only_what_changed():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", checked_out=1, checkouts=4, held=[HELD])], full=True, seq=0), 100.0)
    reg.ingest(rec, report([{"id": "1", "counters": {"checkins": 3}}]), 101.0)
    p = pools_at(reg, 101.0)["1"]
    # checkouts kept, checkins added; every counter shown, those never sent as 0
    assert p["counters"] == dict.fromkeys(protocol.COUNTERS, 0) | {"checkouts": 4, "checkins": 3}
    assert p["gauges"]["checked_out"] == 1 and p["target"] == "mysql+pymysql://nova@db:3306/nova"
    assert p["config"]["size"] == 5 and p["hold"]["bounds"] == [0.01, 0.1, 1.0]


def test_a_delta_without_checkouts_keeps_them_and_ages_them_from_their_receipt():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", checked_out=1, held=[HELD])], full=True, seq=0), 100.0)
    reg.ingest(rec, report([{"id": "1", "counters": {"checkouts": 9}}]), 103.0)
    [co] = pools_at(reg, 105.0)["1"]["checkouts"]
    assert co["age"] == pytest.approx(1.0 + 5.0)  # received at 100, not at 103
    assert (co["id"], co["holder"], co["where"]) == (7, "GET /slow", "app.py:3 in slow")
    # A list that comes again replaces it, and ages count from its receipt.
    reg.ingest(rec, report([{"id": "1", "checkouts": [dict(HELD, age=0.5)], "checkouts_total": 1}]), 106.0)
    [co] = pools_at(reg, 107.0)["1"]["checkouts"]
    assert co["age"] == pytest.approx(1.5)


def test_hold_changed_buckets_patch_the_histogram_held():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1")], full=True, seq=0), 100.0)  # counts [3, 2, 1, 0]
    reg.ingest(rec, report([{"id": "1", "hold": {"changed": [1, 5, 3, 2], "sum": 0.9, "count": 11}}]), 101.0)
    hold = pools_at(reg, 101.0)["1"]["hold"]
    assert hold == {"bounds": [0.01, 0.1, 1.0], "counts": [3, 5, 1, 2], "sum": 0.9, "count": 11}
    assert reg.ignored_pools == 0


def test_what_cannot_be_merged_is_ignored_and_counted_not_crashed_on():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", checkouts=2)], full=True, seq=0), 100.0)
    before = copy.deepcopy(pools_at(reg, 100.0))
    # a pool never sent whole: no name, no target
    reg.ingest(rec, report([{"id": "9", "counters": {"checkouts": 1}}]), 101.0)
    # a whole-looking record whose histogram has no bounds to patch
    reg.ingest(rec, report([{"id": "8", "name": "n", "target": "t", "hold": {"changed": [0, 1], "sum": 0.1}}]), 101.0)
    # changed buckets beyond the histogram held (it has 4)
    reg.ingest(rec, report([{"id": "1", "hold": {"changed": [4, 1], "sum": 0.1}}]), 101.0)
    assert reg.ignored_pools == 3
    assert pools_at(reg, 100.0) == before
    assert reg.reports == 4


def test_an_unknown_pool_sent_whole_in_a_delta_is_added():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1")], full=True, seq=0), 100.0)
    reg.ingest(rec, report([pool("2", target="sqlite:///x.db")]), 101.0)
    assert sorted(pools_at(reg, 101.0)) == ["1", "2"] and reg.ignored_pools == 0


def test_a_merge_counts_a_change_and_leaves_earlier_snapshots_alone():
    """Deltas merge in place: the process's ``changes`` count tells the
    cluster's outbox it changed, and a status built before is not altered
    by what comes after it."""
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", checkouts=4), pool("2")], full=True, seq=0), 100.0)
    before = pools_at(reg, 100.0)
    frozen = copy.deepcopy(before)
    changes = rec.changes
    reg.ingest(rec, report([{"id": "1", "gauges": {"checked_out": 2}, "counters": {"checkouts": 5},
                             "hold": {"changed": [0, 9], "sum": 2.0, "count": 15}}]), 101.0)
    assert rec.changes == changes + 1
    assert before == frozen  # the earlier status shares nothing that was updated
    after = pools_at(reg, 101.0)
    assert after["1"]["gauges"]["checked_out"] == 2 and after["1"]["counters"]["checkouts"] == 5
    assert after["1"]["hold"]["counts"][0] == 9 and after["2"] == frozen["2"]
    reg.ingest(rec, report([]), 102.0)  # a report that changed nothing
    assert rec.changes == changes + 1


def test_a_full_report_replaces_everything_a_restarted_agent_is_whole_after_one():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", checkouts=5), pool("2")], full=True, seq=0), 100.0)
    reg.ingest(rec, report([{"id": "1", "counters": {"checkouts": 6}}], gone=["2"]), 101.0)
    fresh = Registry()
    whole = [pool("1", checkouts=6)]
    fresh.ingest(tracked(fresh), report(whole, full=True, seq=2), 102.0)
    reg.ingest(rec, report(whole, full=True, seq=2), 102.0)
    assert pools_at(reg, 102.0) == pools_at(fresh, 102.0)


@pytest.mark.usefixtures("clean_client")
def test_real_client_deltas_rebuild_what_one_full_report_says(short_tmp):
    """Full, then deltas from the real reporter's builder over a real pool,
    give the agent the state a restarted agent gets from one full report."""
    engine = sa.create_engine(f"sqlite:///{short_tmp}/d.db", poolclass=sa.pool.QueuePool, pool_size=3)
    collector = instrument(engine, socket_path=f"{short_tmp}/nobody.sock", interval=60.0)
    ch = Channel("unused", "prog", 1.0)
    reg = Registry()
    rec = tracked(reg)
    deltas = []

    def send(full: bool) -> None:
        now = runtime.clock()
        msg, versions, gone, snaps = ch.build(now, [collector], full)
        if not full:
            deltas.extend(msg["pools"])
        reg.ingest(rec, report(msg["pools"], full=full, seq=ch.seq, gone=gone), now)
        ch.sent_ok(msg, versions, gone, snaps)

    send(True)
    held = engine.connect()
    send(False)
    with engine.connect() as conn:
        conn.exec_driver_sql("select 1")
        conn.commit()
    send(False)
    send(False)  # nothing changed: no pool in it
    other = engine.connect()
    send(False)
    other.close()
    send(False)
    now = runtime.clock()
    fresh = Registry()
    fresh.ingest(tracked(fresh), report(ch.build(now, [collector], True)[0]["pools"], full=True), now)
    merged, whole = pools_at(reg, now), pools_at(fresh, now)
    ages = [[co.pop("age") for co in pools[collector.id]["checkouts"]] for pools in (merged, whole)]
    assert merged == whole
    assert ages[0] == pytest.approx(ages[1], abs=0.01)
    [co] = whole[collector.id]["checkouts"]
    assert whole[collector.id]["gauges"]["checked_out"] == 1 and co["holder"] == "MainThread"
    # The deltas said only what changed: never the static parts, never a whole histogram.
    assert len(deltas) == 4
    assert not any({"name", "target", "config"} & d.keys() for d in deltas)
    assert all("counts" not in d["hold"] and "changed" in d["hold"] for d in deltas if "hold" in d)
    held.close()
    engine.dispose()


# -- any delta, however malformed: only ProtocolError, and a sound state -----

json_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)
DELTA = {"id": "1", "gauges": {"checked_out": 2}, "counters": {"checkouts": 9},
         "wait": {"sum": 0.1, "max": 0.05}, "checkouts": [HELD], "checkouts_total": 1,
         "hold": {"changed": [0, 4, 3, 1], "sum": 0.6, "count": 8}}
PATHS = [("id",), ("name",), ("target",), ("config",), ("gauges",), ("gauges", "checked_out"),
         ("counters",), ("counters", "x"), ("wait",), ("wait", "sum"), ("checkouts",), ("checkouts", 0),
         ("checkouts", 0, "age"), ("checkouts", 0, "thread"), ("checkouts_total",), ("hold",),
         ("hold", "changed"), ("hold", "changed", 0), ("hold", "changed", 1), ("hold", "counts"),
         ("hold", "bounds"), ("hold", "sum"), ("hold", "count")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(PATHS), json_values, st.booleans())
def test_any_field_of_a_delta_replaced_by_any_value(path, value, unknown_pool):
    record = copy.deepcopy(DELTA)
    if unknown_pool:
        record["id"] = "2"
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1", held=[HELD])], full=True, seq=0), 100.0)
    try:
        msg = report([record])
    except ProtocolError:
        return
    try:
        reg.ingest(rec, msg, 101.0)
    except ProtocolError:
        return
    # Accepted: the status is finite JSON, and every pool in it is whole.
    doc = reg.build(AGENT, 102.0, 0.0)
    text = json.dumps(doc, allow_nan=False)
    assert json.loads(text) == doc
    for p in doc["processes"][0]["pools"]:
        assert isinstance(p["name"], str) and isinstance(p["target"], str)
        hold = p.get("hold")
        if hold is not None:
            assert len(hold["counts"]) == len(hold["bounds"]) + 1 and "changed" not in hold


# -- the same, through a real agent ----------------------------------------------


def test_agent_ignores_and_counts_a_partial_record_of_an_unknown_pool_and_serves_on(scripts, agent):
    from agent_reporters import RawClient

    c = RawClient(scripts).connect(agent.socket)
    assert c.hello("reporter", program="partial")["t"] == "welcome"
    c.report([pool("1", checked_out=1, held=[HELD], checkouts=3)], seq=0)
    c.report([{"id": "2", "counters": {"checkouts": 1}}], full=False, seq=1)  # never sent whole
    c.report([{"id": "1", "counters": {"checkouts": 4}, "hold": {"changed": [0, 9], "sum": 1.0, "count": 12}}],
             full=False, seq=2)

    def merged(s: dict[str, Any]) -> Any:
        row = next((p for p in s["processes"] if p["pid"] == c.pid), None)
        return row is not None and row["counters"]["checkouts"] == 4 and row
    state = agent.wait_state(merged, what="the delta merged")
    row = merged(state)
    [p] = row["pools"]
    assert p["hold"]["counts"] == [9, 2, 1, 0] and p["gauges"]["checked_out"] == 1
    [co] = p["checkouts"]
    assert co["id"] == 7 and co["age"] >= 1.0
    stats = state["agent"]["stats"]
    assert stats["ignored_pools"] == 1 and stats["bad_frames"] == 0 and stats["reports"] == 3


def test_what_a_newer_client_adds_is_kept_and_merged():
    """Gauge and counter names, and pool keys, this agent does not know are
    shown as they came, and deltas update them like the known ones."""
    reg = Registry()
    rec = tracked(reg)
    whole = pool("1", checkouts=4)
    whole["gauges"]["parked"] = 2
    whole["counters"]["reconnects"] = 7
    whole["shard"] = "eu-1"
    reg.ingest(rec, report([whole], full=True, seq=0), 100.0)
    p = pools_at(reg, 100.0)["1"]
    assert p["gauges"]["parked"] == 2 and p["counters"]["reconnects"] == 7 and p["shard"] == "eu-1"
    reg.ingest(rec, report([{"id": "1", "counters": {"reconnects": 8, "checkouts": 5}, "shard": "eu-2"}]), 101.0)
    p = pools_at(reg, 101.0)["1"]
    assert p["counters"]["reconnects"] == 8 and p["counters"]["checkouts"] == 5
    assert p["gauges"]["parked"] == 2 and p["shard"] == "eu-2"
    # roll-ups sum the known names
    (proc,) = reg.build(AGENT, 101.0, 0.0)["processes"]
    assert proc["counters"]["checkouts"] == 5 and "reconnects" not in proc["counters"]


def test_a_delta_with_a_whole_histogram_replaces_the_bounds_held():
    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1")], full=True, seq=0), 100.0)
    hold = {"bounds": [0.5, 5.0], "counts": [1, 2, 3], "sum": 4.5, "count": 6}
    reg.ingest(rec, report([{"id": "1", "hold": hold}]), 101.0)
    assert pools_at(reg, 101.0)["1"]["hold"] == hold
    # and later changed buckets patch the new histogram
    reg.ingest(rec, report([{"id": "1", "hold": {"changed": [2, 4], "sum": 9.0, "count": 7}}]), 102.0)
    assert pools_at(reg, 102.0)["1"]["hold"] == {"bounds": [0.5, 5.0], "counts": [1, 2, 4], "sum": 9.0, "count": 7}
    assert reg.ignored_pools == 0


def test_deltas_cannot_grow_a_pool_without_bound():
    """A client sending new unknown names in every delta is capped (the
    next full report starts over)."""
    from connmon_agent.agent.poolstate import MAX_MORE

    reg = Registry()
    rec = tracked(reg)
    reg.ingest(rec, report([pool("1")], full=True, seq=0), 100.0)
    for i in range(3 * MAX_MORE // 8):
        names = {f"n{i}_{k}": k for k in range(8)}
        reg.ingest(rec, report([{"id": "1", "gauges": names, "counters": names, **{f"k{i}_{k}": k for k in range(8)}}],
                               seq=i + 1), 101.0)
    p = pools_at(reg, 101.0)["1"]
    known = set(protocol.GAUGES) | set(protocol.COUNTERS)
    assert len(set(p["gauges"]) - known) == MAX_MORE and len(set(p["counters"]) - known) == MAX_MORE
    assert len([k for k in p if k.startswith("k")]) == MAX_MORE
    reg.ingest(rec, report([pool("1")], full=True, seq=99), 102.0)
    assert set(pools_at(reg, 102.0)["1"]["gauges"]) == set(protocol.GAUGES)
