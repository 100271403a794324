"""A real Unix-socket listener that speaks the agent's side of the reporter
protocol, so the client's tests do not depend on the agent.

It accepts reporters, answers ``hello`` with ``welcome`` (or an ``error``),
validates every report with ``protocol.validate_report`` (a bad one fails
the test) and keeps them. ``reading=False`` makes it stop reading after the
welcome: an agent that hangs (SIGSTOP) with the reporter connected.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from typing import Any, Callable

from connmon_agent import protocol


class FakeAgent:
    def __init__(self, path: str, *, reading: bool = True, refuse: str | None = None) -> None:
        self.path = path
        self.reading = reading
        self.refuse = refuse
        self.hellos: list[dict[str, Any]] = []
        self.reports: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._srv: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> "FakeAgent":
        if os.path.exists(self.path):
            os.unlink(self.path)
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(self.path)
        srv.listen(16)
        self._srv = srv
        self._stopping = False
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def _accept(self) -> None:
        srv = self._srv
        assert srv is not None
        while not self._stopping:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket, index: int) -> None:
        dec = protocol.FrameDecoder()
        welcomed = False
        while not self._stopping:
            if welcomed and not self.reading:
                time.sleep(0.02)
                continue
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            for msg in dec.feed(data):
                if msg["t"] == "hello":
                    protocol.validate_hello(msg)
                    msg["_conn"] = index
                    with self._lock:
                        self.hellos.append(msg)
                    if self.refuse:
                        conn.sendall(protocol.encode(protocol.error("version", self.refuse)))
                        conn.close()
                        return
                    conn.sendall(protocol.encode(protocol.welcome(protocol.negotiate(msg))))
                    welcomed = True
                elif msg["t"] == "report":
                    try:
                        protocol.validate_report(msg)
                    except Exception as err:  # recorded; the test asserts none
                        self.errors.append(repr(err))
                    msg["_conn"] = index
                    msg["_at"] = time.monotonic()
                    with self._lock:
                        self.reports.append(msg)

    def stop(self) -> None:
        self._stopping = True
        if self._srv is not None:
            try:
                self._srv.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._srv.close()
            self._srv = None
        if self._threads:
            self._threads[0].join(2)  # the accept loop: no new connections after this
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        for t in self._threads:
            t.join(2)
        self._threads = []
        if os.path.exists(self.path):
            os.unlink(self.path)

    # -- reading what arrived -------------------------------------------------

    def all_reports(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.reports)

    def last_pool(self, pool_id: str, pid: int | None = None) -> dict[str, Any] | None:
        """Pool ``pool_id`` as an agent holds it after the latest report that
        carried it (from reporter ``pid``): a full report's record, with the
        delta records sent after it on the same connection merged in key by
        key (``protocol.validate_report``)."""
        conns = None
        if pid is not None:
            with self._lock:
                conns = {h["_conn"] for h in self.hellos if h.get("pid") == pid}
        held: dict[int, dict[str, Any]] = {}
        latest = None
        for msg in self.all_reports():
            if conns is not None and msg["_conn"] not in conns:
                continue
            for pool in msg["pools"]:
                if pool["id"] != pool_id:
                    continue
                before = None if msg["full"] else held.get(msg["_conn"])
                merged = dict(pool) if before is None else {**before, **pool}
                if before is not None:
                    for section in ("gauges", "counters"):
                        if section in pool:
                            merged[section] = {**before[section], **pool[section]}
                    if "changed" in pool.get("hold", {}):
                        counts = list(before["hold"]["counts"])
                        pairs = pool["hold"]["changed"]
                        for i, count in zip(pairs[::2], pairs[1::2]):
                            counts[i] = count
                        merged["hold"] = {**before["hold"], **pool["hold"], "counts": counts}
                        del merged["hold"]["changed"]
                held[msg["_conn"]] = latest = merged
        return latest


def wait_until(predicate: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


import gc

import pytest


@pytest.fixture
def clean_client() -> Any:
    """Stop this process's reporter after the test, and let go of its pools."""
    from connmon_agent.client import guard, reporter

    guard.reset_after_fork()  # each test sees its own log-once and error counts
    yield
    reporter.shutdown()
    gc.collect()


@pytest.fixture
def fake_agent(short_tmp: str) -> Any:
    agents: list[FakeAgent] = []

    def make(name: str = "agent.sock", **kw: Any) -> FakeAgent:
        a = FakeAgent(os.path.join(short_tmp, name), **kw).start()
        agents.append(a)
        return a

    yield make
    for a in agents:
        a.stop()
        assert not a.errors, a.errors
