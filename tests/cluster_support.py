"""Test helpers for the cluster: configuration files with free loopback
ports, cluster agent processes, reporters, and a hand-driven peer that
speaks the real wire protocol (authenticated with the real secret)."""
from __future__ import annotations

import os
import socket
import struct
import tempfile
import textwrap
from typing import Any

from connmon_agent import auth, protocol

from conftest import AgentProcess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_secret(directory: str, data: bytes = b"s3cret-of-the-cluster-0123456789", mode: int = 0o600) -> str:
    path = os.path.join(directory, "secret")
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    return path


def write_config(directory: str, nodes: list[str], *, secret: str | None = None, sync: float = 0.2,
                 stale: float = 1.0, drop: float = 3.0, full: float = 30.0, extra: str = "") -> dict[str, Any]:
    """A service ``default`` with one node per name on free loopback ports;
    returns {"path": ..., "ports": {name: port}}."""
    ports = {name: free_port() for name in nodes}
    lines = [f"    {name} hostname=127.0.0.1:{port}" for name, port in ports.items()]
    text = textwrap.dedent(f"""\
        [connmon_service_default]
        name: default
        sync_interval: {sync}
        full_sync_interval: {full}
        peer_stale_after: {stale}
        peer_drop_after: {drop}
        """)
    if secret:
        text += f"secret_file: {secret}\n"
    text += extra
    text += "nodes:\n" + "\n".join(lines) + "\n"
    path = os.path.join(directory, "connmon.cfg")
    with open(path, "w") as f:
        f.write(text)
    return {"path": path, "ports": ports}


class ClusterAgent(AgentProcess):
    """A ``connmon-agent start --config --node --host`` subprocess."""

    def __init__(self, directory: str, config: str, node: str, host: str, extra: list[str] | None = None) -> None:
        super().__init__(directory, ["--config", config, "--node", node, "--host", host,
                                     "--stale-after", "30", *(extra or [])])
        self.node = node
        self.host = host


def make_agent(short_tmp: str, config: str, node: str, host: str, made: list[AgentProcess]) -> ClusterAgent:
    d = tempfile.mkdtemp(prefix=node, dir=short_tmp)
    a = ClusterAgent(d, config, node, host)
    made.append(a)
    return a


REPORTER = """
import sys, time
import sqlalchemy as sa
url = sys.argv[1]
e = sa.create_engine(url)
held = e.connect()
print("ready", flush=True)
sys.stdin.readline()
held.close()
"""


def reporter_url(db: str, program: str, **params: str) -> str:
    query = "&".join(f"connmon_{k}={v}" for k, v in params.items())
    return f"sqlite:///{db}?plugin=connmon&connmon_program_name={program}&connmon_interval=0.2&{query}"


class Peer:
    """A hand-driven peer (or other TCP client) of an agent: blocking
    socket, real handshake, frames sealed with the real session key."""

    def __init__(self, port: int, secret: bytes | None, hello: dict[str, Any]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5.0)
        self.sent: list[bytes] = []  # every byte string sent, to replay
        self.sealer: auth.Sealer | None = None
        self.opener: auth.Opener | None = None
        self.buf = b""
        try:
            if secret is not None:
                shake = auth.ClientHandshake(secret)
                self.raw(shake.hello_frame(hello))
                self.raw(shake.answer(self.recv_plain()))
                self.sealer, self.opener = shake.sealer, shake.opener
            else:
                self.raw(protocol.encode(hello))
            self.welcome = self.recv()
        except BaseException:
            self.sock.close()
            raise
        if self.welcome is None or self.welcome["t"] != "welcome":
            self.sock.close()
            raise ConnectionError(f"refused: {self.welcome}")

    def raw(self, data: bytes) -> None:
        self.sent.append(data)
        self.sock.sendall(data)

    def _body(self) -> bytes | None:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack("!I", self.buf[:4])
                if len(self.buf) >= 4 + n:
                    body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return body
            try:
                data = self.sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def recv_plain(self) -> dict[str, Any]:
        body = self._body()
        assert body is not None, "connection closed"
        return protocol.decode_body(body)

    def recv(self) -> dict[str, Any] | None:
        body = self._body()
        if body is None:
            return None
        return self.opener.open_msg(body) if self.opener is not None else protocol.decode_body(body)

    def frame(self, msg: dict[str, Any]) -> bytes:
        return self.sealer.seal_msg(msg) if self.sealer is not None else protocol.encode(msg)

    def send(self, msg: dict[str, Any]) -> bytes:
        data = self.frame(msg)
        self.raw(data)
        return data

    def closed(self, timeout: float = 5.0) -> bool:
        """True once the agent has closed the connection (reading what it sends)."""
        self.sock.settimeout(timeout)
        while True:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                return False
            except OSError:
                return True
            if not data:
                return True

    def close(self) -> None:
        self.sock.close()


def peer_hello(node: str, **extra: Any) -> dict[str, Any]:
    return protocol.hello("peer", node=node, service="default", host=f"host-{node}", **extra)


def sync(node: str, boot: int, seq: int, full: bool, procs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {"t": "sync", "node": node, "host": f"host-{node}", "boot": boot, "seq": seq, "full": full}
    if full:
        msg["hosts"] = [f"host-{node}"]
        msg["procs"] = procs or []
    elif procs:
        msg["procs"] = procs
    msg.update(extra)
    return msg


def proc(node: str, pid: int, program: str = "app", checked_out: int = 1) -> dict[str, Any]:
    return {
        "host": f"host-{node}", "pid": pid, "started": 1000.0 + pid, "uid": 0, "program": program,
        "age": 0.1, "dropped": 0,
        "pools": [{
            "id": "1", "name": "Engine(sqlite://)", "target": "sqlite+pysqlite://",
            "config": {"class": "QueuePool", "size": 5, "max_overflow": 10},
            "gauges": {"checked_out": checked_out, "checked_in": 0, "connections": checked_out},
            "counters": {"checkouts": 3},
            "checkouts": [{"id": 1, "age": 2.0, "holder": "MainThread", "kind": "thread", "where": None}],
            "checkouts_total": 1,
        }],
    }
