"""Test helper: real reporter processes that speak raw frames to the agent.

Each :class:`RawClient` is a tiny Python subprocess (spawned with the
``scripts`` fixture, so teardown ends it) that executes one JSON command per
stdin line — connect, send a message, send raw bytes, receive a frame,
close, fork a child that keeps the socket open — and answers one JSON line.
It never imports connmon: the agent is driven by bytes, not by the client.
"""
from __future__ import annotations

import json
import os
import signal
from typing import Any

SCRIPT = r"""
import json, os, socket, struct, sys, time

sock = None
kept = []  # earlier connections stay open when "connect" is sent again
buf = b""


def reply(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def recv_frame(timeout):
    global buf
    sock.settimeout(timeout)
    while True:
        if len(buf) >= 4:
            (n,) = struct.unpack("!I", buf[:4])
            if len(buf) >= 4 + n:
                body, buf = buf[4:4 + n], buf[4 + n:]
                return json.loads(body)
        data = sock.recv(65536)
        if not data:
            return None
        buf += data


for line in sys.stdin:
    cmd = json.loads(line)
    op = cmd["op"]
    try:
        if op == "connect":
            if sock is not None:
                kept.append(sock)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(cmd["path"])
            buf = b""
            reply(ok=True, pid=os.getpid())
        elif op == "send":
            body = json.dumps(cmd["msg"]).encode()
            sock.sendall(struct.pack("!I", len(body)) + body)
            reply(ok=True)
        elif op == "raw":
            sock.sendall(bytes.fromhex(cmd["hex"]))
            reply(ok=True)
        elif op == "recv":
            try:
                msg = recv_frame(cmd.get("timeout", 5.0))
            except socket.timeout:
                reply(timeout=True)
            else:
                reply(closed=True) if msg is None else reply(msg=msg)
        elif op == "shut_wr":
            sock.shutdown(socket.SHUT_WR)
            reply(ok=True)
        elif op == "close":
            sock.close()
            sock = None
            reply(ok=True)
        elif op == "fork_holder":
            child = os.fork()
            if child == 0:
                sys.stdin.close()
                time.sleep(120)
                os._exit(0)
            reply(ok=True, child=child)
        else:
            reply(error="unknown op " + op)
    except (OSError, ValueError) as err:
        if isinstance(err, (ConnectionResetError, BrokenPipeError)):
            reply(closed=True, error=str(err))
        else:
            reply(error=repr(err))
"""


class RawClient:
    """A real process holding one raw connection to the agent."""

    def __init__(self, scripts: Any, name: str = "reporter") -> None:
        self.proc = scripts.spawn(SCRIPT, name=name)
        self.pid = self.proc.pid
        self.children: list[int] = []

    def _do(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"raw client exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
        return json.loads(line)

    def connect(self, path: str) -> "RawClient":
        r = self._do(op="connect", path=path)
        assert r.get("ok"), r
        return self

    def send(self, msg: dict[str, Any]) -> dict[str, Any]:
        return self._do(op="send", msg=msg)

    def raw(self, data: bytes) -> dict[str, Any]:
        return self._do(op="raw", hex=data.hex())

    def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        """``{"msg": ...}``, ``{"closed": True}`` or ``{"timeout": True}``."""
        return self._do(op="recv", timeout=timeout)

    def shut_wr(self) -> None:
        self._do(op="shut_wr")

    def close(self) -> None:
        self._do(op="close")

    def fork_holder(self) -> int:
        """Fork a child that inherits (and keeps open) the connection."""
        child = self._do(op="fork_holder")["child"]
        self.children.append(child)
        return child

    def hello(self, role: str = "reporter", proto: list[int] | None = None, **fields: Any) -> dict[str, Any]:
        """Send a hello and return the agent's answer (welcome or error)."""
        msg = {"t": "hello", "proto": proto or [1, 1], "role": role, "version": "0.1.0"}
        msg.update(fields)
        self.send(msg)
        r = self.recv()
        assert "msg" in r, r
        return r["msg"]

    def report(self, pools: list[dict[str, Any]], full: bool = True, seq: int = 0, gone: list[str] | None = None, **fields: Any) -> None:
        msg = {"t": "report", "seq": seq, "full": full, "pools": pools, "gone": gone or []}
        msg.update(fields)
        r = self.send(msg)
        assert r.get("ok"), r

    def kill_children(self) -> None:
        for child in self.children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.children.clear()


def pool(pid: str = "1", *, target: str = "mysql+pymysql://nova@db:3306/nova", name: str | None = None,
         size: int | None = 5, max_overflow: int | None = 10, cls: str = "QueuePool",
         checked_out: int = 0, checked_in: int = 0, connections: int | None = None,
         held: list[dict[str, Any]] | None = None, **counters: int) -> dict[str, Any]:
    """A pool object as a reporter sends it; ``held`` is its checkout list,
    ``counters`` its counters by name (``checkouts=5``)."""
    config: dict[str, Any] = {"class": cls, "timeout": 30.0, "recycle": -1, "pre_ping": False}
    if size is not None:
        config["size"] = size
    if max_overflow is not None:
        config["max_overflow"] = max_overflow
    return {
        "id": pid,
        "name": name or f"Engine({target})",
        "target": target,
        "config": config,
        "gauges": {"checked_out": checked_out, "checked_in": checked_in,
                   "connections": checked_out + checked_in if connections is None else connections,
                   "detached": 0, "overflow": 0, "waiters": 0},
        "counters": dict(counters),
        "checkouts": held or [],
        "checkouts_total": len(held or []),
        "hold": {"bounds": [0.01, 0.1, 1.0], "counts": [3, 2, 1, 0], "sum": 0.5, "count": 6},
    }
