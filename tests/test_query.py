"""The console side of the agent link (``connmon_agent.query``): a big
state is decoded with the cyclic garbage collector paused, a small frame
with it running, and the collector is always running again afterwards.
A real Unix socket and a real (minimal) agent thread."""
from __future__ import annotations

import gc
import os
import socket
import threading
from typing import Any

import pytest

from connmon_agent import protocol, query


def serve_states(path: str, states: list[dict[str, Any]]) -> threading.Thread:
    """A minimal agent: welcomes one console and answers each query with
    the next of ``states``."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            dec = protocol.FrameDecoder(1 << 20)
            pending = list(states)
            while pending:
                data = conn.recv(65536)
                if not data:
                    return
                for msg in dec.feed(data):
                    if msg["t"] == "hello":
                        conn.sendall(protocol.encode(protocol.welcome(1, role="console", host="h", pid=os.getpid())))
                    elif msg["t"] == "query":
                        conn.sendall(protocol.encode(pending.pop(0)))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_big_state_is_decoded_with_the_collector_paused(short_tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = os.path.join(short_tmp, "a.sock")
    big = {"t": "state", "processes": [{"pid": i, "program": "x" * 40} for i in range(30_000)]}
    small = {"t": "state", "processes": []}
    assert len(protocol.encode(big)) > query.BIG_FRAME > len(protocol.encode(small))
    thread = serve_states(path, [big, small])
    seen: list[tuple[int, bool]] = []
    decode = protocol.decode_body

    def watched(body: Any) -> dict[str, Any]:
        seen.append((len(body), gc.isenabled()))
        return decode(body)

    monkeypatch.setattr(protocol, "decode_body", watched)
    assert gc.isenabled()
    link = query.AgentLink(path, timeout=10)
    try:
        for expected in (big, small):
            link.send({"t": "query"})
            assert link.receive(timeout=10) == expected
    finally:
        link.close()
    thread.join(10)
    sizes = [size for size, _ in seen]
    paused = {size: not enabled for size, enabled in seen}
    assert paused[max(sizes)] and not paused[min(sizes)]  # big: paused; the welcome and small: not
    assert gc.isenabled()


def test_gc_paused_leaves_a_paused_collector_paused() -> None:
    gc.disable()
    try:
        with query.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
    with query.gc_paused(False):
        assert gc.isenabled()
