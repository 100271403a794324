"""Reporters on both of the agent's event loops (asyncio's and uvloop's,
``CONNMON_AGENT_LOOP``) and both JSON decoders (``CONNMON_JSON``): frames split anywhere, several per read, bytes that
arrived with the hello, bad frames, EOF and disconnects; and the memory
release after big snapshots. A real agent process, real reporter processes."""
from __future__ import annotations

import struct
from typing import Any

import pytest

from agent_reporters import RawClient, pool
from connmon_agent import protocol
from connmon_agent.agent import memory


@pytest.fixture(params=[("asyncio", "stdlib"), ("uvloop", "orjson")], ids=["asyncio-stdlib", "uvloop-orjson"])
def loop_agent(request, agent_factory, monkeypatch):
    loop, decoder = request.param
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    if decoder == "orjson":
        pytest.importorskip("orjson")
    monkeypatch.setenv("CONNMON_AGENT_LOOP", loop)
    monkeypatch.setenv("CONNMON_JSON", decoder)
    agent = agent_factory()
    assert f"event loop: {loop}; JSON decoder: {decoder}" in agent.read_log()
    return agent


def proc_of(state: dict[str, Any], pid: int) -> dict[str, Any] | None:
    return next((p for p in state["processes"] if p["pid"] == pid), None)


def report(pools: list[dict[str, Any]], seq: int, full: bool = True) -> bytes:
    return protocol.encode({"t": "report", "seq": seq, "full": full, "pools": pools})


def test_frames_split_across_reads_and_sent_with_the_hello_are_all_ingested(scripts, loop_agent):
    c = RawClient(scripts).connect(loop_agent.socket)
    hello = protocol.encode({"t": "hello", "proto": [1, 1], "role": "reporter", "version": "0.1.0", "program": "split"})
    second = report([pool("1"), pool("2")], seq=1)
    # The hello, a whole report and the start of the next in one write.
    c.raw(hello + report([pool("1")], seq=0) + second[:7])
    assert c.recv()["msg"]["t"] == "welcome"
    c.raw(second[7:20])
    c.raw(second[20:])
    loop_agent.wait_state(lambda s: (p := proc_of(s, c.pid)) and len(p["pools"]) == 2, what="both reports")
    # Several frames in one read, the last one split.
    third = report([pool("1"), pool("2"), pool("3")], seq=3)
    c.raw(report([pool("1")], seq=2) + third[:-1])
    c.raw(third[-1:])
    state = loop_agent.wait_state(lambda s: len(proc_of(s, c.pid)["pools"]) == 3, what="three pools")
    assert state["agent"]["stats"]["bad_frames"] == 0
    assert proc_of(state, c.pid)["program"] == "split"


def test_bad_frame_after_hello_answers_closes_and_forgets_only_that_reporter(scripts, loop_agent):
    good = RawClient(scripts).connect(loop_agent.socket)
    assert good.hello("reporter", program="good")["t"] == "welcome"
    good.report([pool("1")])
    bad = RawClient(scripts).connect(loop_agent.socket)
    assert bad.hello("reporter", program="bad")["t"] == "welcome"
    bad.report([pool("1")])
    loop_agent.wait_state(lambda s: proc_of(s, good.pid) and proc_of(s, bad.pid), what="both reporters")

    bad.raw(struct.pack("!I", protocol.MAX_REPORT_FRAME + 1))
    answer = bad.recv()
    assert answer["msg"]["t"] == "error" and answer["msg"]["code"] == "protocol"
    assert "exceeds the maximum" in answer["msg"]["message"]
    assert bad.recv().get("closed")
    state = loop_agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] == 1 and not proc_of(s, bad.pid),
                                  what="bad reporter counted and forgotten")
    assert state["agent"]["stats"]["clients"] == 2  # the good reporter and the asking console
    good.report([pool("1"), pool("2")], seq=1)
    loop_agent.wait_state(lambda s: len(proc_of(s, good.pid)["pools"]) == 2, what="good reporter still served")


def test_eof_inside_a_frame_and_plain_disconnect_after_hello(scripts, loop_agent):
    cut = RawClient(scripts).connect(loop_agent.socket)
    assert cut.hello("reporter")["t"] == "welcome"
    cut.report([pool("1")])
    loop_agent.wait_state(lambda s: proc_of(s, cut.pid), what="reporter")
    cut.raw(report([pool("1")], seq=1)[:30])
    cut.shut_wr()
    answer = cut.recv()
    assert answer["msg"]["code"] == "protocol" and "inside a frame" in answer["msg"]["message"]
    loop_agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] == 1 and not s["processes"], what="counted")

    gone = RawClient(scripts).connect(loop_agent.socket)
    assert gone.hello("reporter")["t"] == "welcome"
    gone.report([pool("1")])
    loop_agent.wait_state(lambda s: proc_of(s, gone.pid), what="second reporter")
    gone.close()
    state = loop_agent.wait_state(lambda s: not s["processes"], what="disconnected reporter forgotten")
    assert state["agent"]["stats"]["bad_frames"] == 1


def test_memory_release_never_raises():
    assert memory.tune() in (True, False)
    assert memory.trim() in (True, False)
