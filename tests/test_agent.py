"""The agent as a black box: a real agent process, real reporter processes
speaking raw frames over real Unix sockets."""
from __future__ import annotations

import os
import signal
import struct
import time
from typing import Any

import pytest

from agent_reporters import RawClient, pool
from connmon_agent import protocol

GAUGE_NAMES = set(protocol.GAUGES)
COUNTER_NAMES = set(protocol.COUNTERS)


def reporter(scripts: Any, agent: Any, **hello: Any) -> RawClient:
    c = RawClient(scripts).connect(agent.socket)
    welcome = c.hello("reporter", **hello)
    assert welcome["t"] == "welcome", welcome
    return c


def proc_of(state: dict[str, Any], pid: int) -> dict[str, Any] | None:
    return next((p for p in state["processes"] if p["pid"] == pid), None)


def test_identity_comes_from_peer_credentials_not_from_the_hello(scripts, agent):
    c = RawClient(scripts).connect(agent.socket)
    welcome = c.hello("reporter", program="liar", pid=1, host="elsewhere")
    assert welcome["pid"] == c.pid != 1
    assert welcome["host"] == agent.state()["agent"]["host"]
    c.report([pool("1")])
    state = agent.wait_state(lambda s: proc_of(s, c.pid), what="the reporter")
    assert [p["pid"] for p in state["processes"]] == [c.pid]
    proc = state["processes"][0]
    assert proc["host"] != "elsewhere"
    assert proc["program"] == "liar"
    import psutil

    assert proc["started"] == pytest.approx(psutil.Process(c.pid).create_time(), abs=0.01)


def test_full_delta_and_gone_reports_give_exact_rollups(scripts, agent):
    nova = "mysql+pymysql://nova@db:3306/nova"
    glance = "postgresql+psycopg2://glance@pg:5432/glance"
    a = reporter(scripts, agent, program="nova-api")
    b = reporter(scripts, agent, program="nova-api")
    g = reporter(scripts, agent, program="glance")
    a.report([pool("1", target=nova, checked_out=2, checked_in=1, checkouts=5, connects=3),
              pool("2", target=glance, size=2, max_overflow=0, checked_in=1, checkouts=1, connects=1)])
    b.report([pool("1", target=nova, checked_out=1, checked_in=0, checkouts=7, connects=1)])
    g.report([pool("1", target=glance, size=3, max_overflow=1, checked_out=0, checked_in=2, checkouts=2, connects=2)])
    state = agent.wait_state(lambda s: s["totals"]["pools"] == 4, what="four pools")

    t = state["totals"]
    assert (t["processes"], t["pools"], t["capacity"]) == (3, 4, 15 + 2 + 15 + 4)
    assert t["gauges"] == {"checked_out": 3, "checked_in": 4, "connections": 7, "detached": 0, "overflow": 0, "waiters": 0}
    assert t["counters"]["checkouts"] == 15 and t["counters"]["connects"] == 7
    assert set(t["counters"]) == COUNTER_NAMES and set(t["gauges"]) == GAUGE_NAMES

    progs = {(p["host"], p["program"]): p for p in state["programs"]}
    host = state["agent"]["host"]
    assert [p["program"] for p in state["programs"]] == ["glance", "nova-api"]
    assert (progs[host, "nova-api"]["processes"], progs[host, "nova-api"]["pools"]) == (2, 3)
    assert progs[host, "nova-api"]["capacity"] == 15 + 2 + 15
    assert progs[host, "nova-api"]["gauges"]["checked_out"] == 3

    dbs = {d["target"]: d for d in state["databases"]}
    assert [d["target"] for d in state["databases"]] == sorted(dbs)
    assert (dbs[nova]["processes"], dbs[nova]["pools"], dbs[nova]["capacity"]) == (2, 2, 30)
    assert (dbs[glance]["processes"], dbs[glance]["pools"], dbs[glance]["capacity"]) == (2, 2, 6)
    assert dbs[glance]["gauges"]["checked_in"] == 3

    [h] = state["hosts"]
    assert (h["host"], h["processes"], h["pools"], h["stale"]) == (host, 3, 4, False)

    pa = proc_of(state, a.pid)
    assert (pa["processes"], len(pa["pools"]), pa["capacity"]) == (1, 2, 17)
    assert [p["id"] for p in pa["pools"]] == ["1", "2"]

    # Delta: pool 1 of a changes, pool 2 untouched.
    a.report([pool("1", target=nova, checked_out=0, checked_in=3, checkouts=9, connects=3)], full=False, seq=1)
    state = agent.wait_state(lambda s: s["totals"]["counters"]["checkouts"] == 19, what="the delta")
    assert state["totals"]["gauges"]["checked_out"] == 1
    assert state["totals"]["pools"] == 4
    assert len(proc_of(state, a.pid)["pools"]) == 2

    # Gone: pool 2 of a is disposed; an unbounded pool appears in b.
    a.report([], full=False, seq=2, gone=["2"])
    b.report([pool("9", target="sqlite:///x.db", cls="NullPool", size=None, max_overflow=None)], full=False, seq=1)
    state = agent.wait_state(lambda s: s["totals"]["pools"] == 4 and len(proc_of(s, a.pid)["pools"]) == 1, what="gone")
    assert state["totals"]["capacity"] is None
    assert {d["target"]: d["capacity"] for d in state["databases"]} == {nova: 30, glance: 4, "sqlite:///x.db": None}
    assert dbs.keys() <= {d["target"] for d in state["databases"]}
    assert {d["target"]: d["processes"] for d in state["databases"]}[glance] == 1

    # A full report replaces the whole pool map.
    b.report([pool("3", target=nova, size=1, max_overflow=0)], seq=2)
    state = agent.wait_state(lambda s: [p["id"] for p in proc_of(s, b.pid)["pools"]] == ["3"], what="full replace")
    assert state["totals"]["capacity"] == 15 + 1 + 4
    assert state["agent"]["stats"]["reports"] == 7


def test_checkout_ages_are_brought_forward_to_generated_at(scripts, agent):
    c = reporter(scripts, agent, program="holder")
    t0 = time.monotonic()
    c.report([pool("1", checked_out=1, held=[{"id": 7, "age": 1.0, "holder": "GET /slow", "kind": "request", "where": "app.py:3 in slow"}])])
    agent.wait_state(lambda s: proc_of(s, c.pid) and proc_of(s, c.pid)["pools"], what="the pool")
    time.sleep(0.4)
    state = agent.state()
    elapsed = time.monotonic() - t0
    [co] = proc_of(state, c.pid)["pools"][0]["checkouts"]
    # Received before the first state, asked >= 0.4 s later (snapshots live 0.1 s).
    assert 1.0 + 0.25 <= co["age"] <= 1.0 + elapsed + 0.01
    assert (co["holder"], co["kind"], co["where"], co["id"]) == ("GET /slow", "request", "app.py:3 in slow", 7)
    assert state["totals"]["longest_checkout"] == co["age"]
    assert proc_of(state, c.pid)["longest_checkout"] == co["age"]


def test_closed_connection_forgets_the_process(scripts, agent):
    c = reporter(scripts, agent)
    c.report([pool("1")])
    agent.wait_state(lambda s: proc_of(s, c.pid), what="reporter")
    c.close()
    agent.wait_state(lambda s: not s["processes"], what="process forgotten")


def test_sigkilled_reporter_disappears_even_if_a_child_keeps_its_socket(scripts, agent):
    c = reporter(scripts, agent)
    c.report([pool("1")])
    agent.wait_state(lambda s: proc_of(s, c.pid), what="reporter")
    c.fork_holder()
    try:
        os.kill(c.pid, signal.SIGKILL)
        c.proc.wait(5)
        state = agent.wait_state(lambda s: not s["processes"], timeout=2.0, what="killed process gone")
        assert state["agent"]["stats"]["exited"] == 1
    finally:
        c.kill_children()


def test_second_connection_of_a_process_replaces_the_first(scripts, agent):
    c = reporter(scripts, agent)
    c.report([pool("1"), pool("2")])
    agent.wait_state(lambda s: s["totals"]["pools"] == 2, what="two pools")
    # Same process, new connection (the old one is still open in the agent's view).
    c2 = c.connect(agent.socket)
    assert c2.hello("reporter")["t"] == "welcome"
    c2.report([pool("5")])
    state = agent.wait_state(lambda s: s["totals"]["pools"] == 1, what="replacement")
    assert [p["pid"] for p in state["processes"]] == [c.pid]
    assert state["agent"]["stats"]["replaced"] == 1


@pytest.mark.parametrize("proto", [[0, 0], [2, 7]], ids=["older", "newer"])
def test_version_mismatch_is_answered_then_closed(scripts, agent, proto):
    c = RawClient(scripts).connect(agent.socket)
    answer = c.hello("reporter", proto=proto)
    assert answer["t"] == "error" and answer["code"] == "version"
    assert f"{proto[0]}..{proto[1]}" in answer["message"] and "1..1" in answer["message"]
    assert c.recv()["closed"]
    stats = agent.state()["agent"]["stats"]
    assert (stats["version_mismatches"], stats["rejected"], stats["bad_frames"]) == (1, 1, 0)


def test_newer_client_that_also_speaks_our_version_is_welcomed(scripts, agent):
    c = RawClient(scripts).connect(agent.socket)
    answer = c.hello("reporter", proto=[1, 9], future_field={"x": 1})
    assert answer["t"] == "welcome" and answer["proto"] == 1


BAD_INPUTS = {
    "garbage": b"\x00\x00\x00\x05hello",
    "not_json_object": struct.pack("!I", 2) + b"[]",
    "oversized": struct.pack("!I", protocol.MAX_REPORT_FRAME + 1) + b"{}",
    "empty_frame": struct.pack("!I", 0),
    "random": bytes(range(256)) * 4,
    "report_before_hello": protocol.encode({"t": "report", "seq": 0, "full": True, "pools": []}),
    "unknown_type": protocol.encode({"t": "bogus"}),
    "bad_hello": protocol.encode({"t": "hello", "proto": "1", "role": "reporter"}),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_malformed_input_closes_only_that_connection(scripts, agent, name):
    good = reporter(scripts, agent, program="good")
    good.report([pool("1")])
    agent.wait_state(lambda s: proc_of(s, good.pid), what="good reporter")

    bad = RawClient(scripts).connect(agent.socket)
    bad.raw(BAD_INPUTS[name])
    answer = bad.recv()
    if "msg" in answer:
        assert answer["msg"]["t"] == "error" and answer["msg"]["code"] == "protocol"
        answer = bad.recv()
    assert answer.get("closed"), answer
    state = agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] == 1, what="bad frame counted")
    assert proc_of(state, good.pid)

    good.report([pool("1"), pool("2")], seq=1)
    agent.wait_state(lambda s: len(proc_of(s, good.pid)["pools"]) == 2, what="good reporter still served")


@pytest.mark.parametrize("role,msg", [
    ("reporter", {"t": "query"}),
    ("reporter", {"t": "hello", "proto": [1, 1], "role": "reporter"}),
    ("reporter", {"t": "report", "seq": -1, "full": True, "pools": []}),
    ("reporter", {"t": "report", "seq": 1, "full": True, "pools": [{"id": "1", "name": "x", "target": "y", "checkouts": [{"id": 1, "age": "old"}]}]}),
    ("console", {"t": "report", "seq": 0, "full": True, "pools": []}),
    ("console", {"t": "subscribe", "interval": "fast"}),
], ids=["reporter_query", "reporter_hello_twice", "bad_seq", "bad_checkout_age", "console_report", "bad_interval"])
def test_wrong_message_for_the_role_closes_that_connection(scripts, agent, role, msg):
    c = RawClient(scripts).connect(agent.socket)
    assert c.hello(role)["t"] == "welcome"
    c.send(msg)
    answer = c.recv()
    assert answer["msg"]["t"] == "error", answer
    assert c.recv().get("closed")
    state = agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] == 1, what="counted")
    assert state["processes"] == []


def test_truncated_frame_then_eof_is_counted(scripts, agent):
    c = RawClient(scripts).connect(agent.socket)
    assert c.hello("reporter")["t"] == "welcome"
    c.raw(struct.pack("!I", 100) + b'{"t": "rep')
    c.shut_wr()
    answer = c.recv()
    assert answer["msg"]["code"] == "protocol" and "inside a frame" in answer["msg"]["message"]
    agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] == 1 and not s["processes"], what="counted")


def test_peer_role_is_refused_on_the_local_socket(scripts, agent):
    c = RawClient(scripts).connect(agent.socket)
    answer = c.hello("peer")
    assert answer["t"] == "error" and answer["code"] == "role"
    assert c.recv().get("closed")


def test_a_client_that_says_nothing_is_dropped(scripts, agent_factory):
    agent = agent_factory(["--hello-timeout", "0.3"])
    c = RawClient(scripts).connect(agent.socket)
    assert c.recv(timeout=10).get("closed")
    assert agent.state()["agent"]["stats"]["hello_timeouts"] == 1


def test_silent_process_is_dropped_after_drop_after(scripts, agent_factory):
    agent = agent_factory(["--drop-after", "0.5", "--stale-after", "0.2"])
    c = reporter(scripts, agent)
    c.report([pool("1")])
    agent.wait_state(lambda s: proc_of(s, c.pid), what="reporter")
    agent.wait_state(lambda s: s["processes"] and s["processes"][0]["stale"] and s["hosts"][0]["stale"], what="stale")
    state = agent.wait_state(lambda s: not s["processes"], what="silent process dropped")
    assert state["agent"]["stats"]["silent_dropped"] == 1
    assert c.recv().get("closed")


def test_subscribe_pushes_states_until_closed(scripts, agent):
    from connmon_agent.query import subscribe

    with subscribe(agent.socket, interval=0.1) as sub:
        first = next(sub)
        assert first["processes"] == []
        c = reporter(scripts, agent, program="late")
        c.report([pool("1")])
        for state in sub:
            if state["processes"]:
                break
        assert state["processes"][0]["program"] == "late"
        assert state["agent"]["stats"]["subscribers"] == 1
    agent.wait_state(lambda s: s["agent"]["stats"]["subscribers"] == 0, what="subscriber gone")


def test_many_reporters_at_once(scripts, agent):
    clients = [reporter(scripts, agent, program=f"p{i % 3}") for i in range(12)]
    for i, c in enumerate(clients):
        c.report([pool("1", checked_out=1, checked_in=i)])
    state = agent.wait_state(lambda s: s["totals"]["processes"] == 12 and s["totals"]["pools"] == 12, what="12 processes")
    assert state["totals"]["gauges"]["checked_in"] == sum(range(12))
    assert [p["program"] for p in state["programs"]] == ["p0", "p1", "p2"]
    assert [p["processes"] for p in state["programs"]] == [4, 4, 4]
    keys = [(p["host"], p["program"], p["pid"]) for p in state["processes"]]
    assert keys == sorted(keys)


def test_a_subscriber_that_does_not_read_gets_ticks_skipped_not_buffered(scripts, agent_factory):
    agent = agent_factory(["--subscriber-buffer", "100000"])
    held = [{"id": i, "age": 1.0, "holder": "h" * 200, "kind": "thread", "where": "w" * 300} for i in range(protocol.MAX_CHECKOUTS)]
    for _ in range(3):  # a state of ~2.5 MB, far more than the socket buffers
        reporter(scripts, agent, program="big").report([pool(str(i), held=held) for i in range(15)])
    agent.wait_state(lambda s: s["totals"]["pools"] == 45, what="big state")
    slow = RawClient(scripts).connect(agent.socket)
    assert slow.hello("console")["t"] == "welcome"
    slow.send({"t": "subscribe", "interval": 0.1})  # and never read
    state = agent.wait_state(lambda s: s["agent"]["stats"]["skipped_ticks"] >= 3, what="skipped ticks")
    assert state["agent"]["stats"]["subscribers"] == 1
