"""The agent's TCP listener: one :class:`TcpConnection` per peer, TCP
reporter or remote console.

The same conversation as on the Unix socket (:mod:`.server`), plus:

* with a shared secret, the authentication handshake of
  :mod:`connmon_agent.auth` before anything else, and every later frame
  sealed (MAC + sequence); a forged, tampered, replayed or oversized frame
  is counted (``agent.stats``), logged and never applied, and the
  connection is closed;
* the ``peer`` role: another node of the service pushing its own state
  (``sync`` messages, :mod:`.remote`);
* reporters are named by what their (authenticated) hello claims — host,
  pid and start time — since TCP has no ``SO_PEERCRED``; they are shown
  under their claimed host and are not watched by pid.

Event loop only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from .. import auth, protocol
from ..errors import ProtocolError
from .outbox import unpack
from .registry import ProcessRecord
from .server import MAX_FRAME, SMALL_FRAME, Connection

if TYPE_CHECKING:
    from .federation import Federation

log = logging.getLogger("connmon.agent")


class TcpConnection(Connection):
    """One TCP client of the agent (event loop only)."""

    __slots__ = ("fed", "frames", "sealer", "opener", "shake", "hello_msg", "body", "address", "node")

    def __init__(self, fed: "Federation") -> None:
        super().__init__(fed.server)
        self.fed = fed
        self.frames = auth.RawFrames(SMALL_FRAME)
        self.sealer: auth.Sealer | None = None
        self.opener: auth.Opener | None = None
        self.shake: auth.ServerHandshake | None = None
        self.hello_msg: dict[str, Any] | None = None
        self.body = b""
        self.address = "?"
        self.node: str | None = None

    # -- asyncio callbacks --------------------------------------------------

    def _identify(self, transport: asyncio.BaseTransport) -> None:
        peername = transport.get_extra_info("peername")
        if peername:
            self.address = f"{peername[0]}:{peername[1]}"

    def data_received(self, data: bytes) -> None:
        try:
            for body in self.frames.feed(data):
                if self.closed:
                    return
                if self.role == "peer":
                    # Peers send compressed syncs (outbox.pack).
                    self.fed.bytes_in += len(body) + protocol.HEADER_SIZE
                    payload = self.opener.open(body) if self.opener is not None else body
                    msg = protocol.decode_body(unpack(payload, self.fed.options.max_peer_frame))
                elif self.opener is not None:
                    msg = self.opener.open_msg(body)
                else:
                    self.body = body
                    msg = protocol.decode_body(body)
                self.handler(msg)
        except auth.AuthError as err:
            self.fed.auth_failure(self, err)
        except ProtocolError as err:
            self.server.bad_frame(self, err)

    def pending_bytes(self) -> int:
        return self.frames.pending

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.role == "peer" and self.node is not None:
            self.fed.peer_lost(self)

    def write_frame(self, frame: bytes) -> None:
        if self.sealer is not None:
            frame = self.sealer.seal_frame(frame)
        if self.role == "peer":
            self.fed.bytes_out += len(frame)
        self.transport.write(frame)  # type: ignore[union-attr]

    def describe(self) -> str:
        if self.rec is not None:
            return f"{self.rec.program or 'reporter'} pid {self.rec.pid} on {self.rec.host} from {self.address}"
        if self.node is not None:
            return f"peer {self.node} from {self.address}"
        return f"TCP client {self.address}"

    # -- handshake ----------------------------------------------------------

    def _on_hello(self, msg: dict[str, Any]) -> None:
        protocol.validate_hello(msg)
        secret = self.fed.secret
        if secret is None:
            if msg.get("auth") is not None:
                self.server.reject(self, "auth", "this agent has no shared secret; connect without one")
                return
            self._hello_done(msg)
            return
        if msg.get("auth") != auth.SCHEME:
            self.server.reject(self, "auth", f"this agent requires authentication ({auth.SCHEME} with the shared secret)")
            return
        self.shake = auth.ServerHandshake(secret, self.fed.nonces)
        challenge = self.shake.challenge(self.body, msg)
        self.hello_msg = msg
        self.handler = self._on_proof
        self.transport.write(challenge)  # type: ignore[union-attr]

    def _on_proof(self, msg: dict[str, Any]) -> None:
        assert self.shake is not None and self.hello_msg is not None
        self.sealer, self.opener = self.shake.verify(msg)
        self.shake = None
        self._hello_done(self.hello_msg)

    def _hello_done(self, msg: dict[str, Any]) -> None:
        version = self._negotiate(msg)
        if version is None:
            return
        server = self.server
        role = msg["role"]
        overhead = auth.SEALED_OVERHEAD if self.sealer is not None else 0
        if role == "reporter":
            rec = self._reporter(msg)
            if rec is None:
                return
            self.handler = self._on_report
            self.role = role
            self.frames.max_size = MAX_FRAME[role] + overhead
            self.send(protocol.welcome(version, role=role, host=rec.host, pid=rec.pid, started=rec.started))
        elif role == "console":
            self.handler = self._on_console
            self.role = role
            self.frames.max_size = SMALL_FRAME + overhead
            self.send(protocol.welcome(version, role=role, host=server.options.host, node=self.fed.node.name))
        else:
            node = self.fed.accept_peer(self, msg)
            if node is None:
                return
            self.node = node
            self.role = "peer"
            self.handler = self._on_peer
            self.frames.max_size = self.fed.options.max_peer_frame + overhead
            self.send(protocol.welcome(version, role="peer", node=self.fed.node.name, host=server.options.host))

    def _reporter(self, hello: dict[str, Any]) -> ProcessRecord | None:
        """The record of a TCP reporter, named by its authenticated hello."""
        pid = hello.get("pid")
        host = hello.get("host")
        if not isinstance(pid, int) or pid < 0 or not isinstance(host, str) or not host:
            self.server.reject(self, "identity", "a TCP reporter's hello must name its host and pid")
            return None
        started = hello.get("started")
        rec = ProcessRecord(host, pid, float(started) if started is not None else 0.0, None,
                            hello.get("program") or "", self, hello.get("interval"))
        self.server._track(self, rec, watch=False)
        return rec

    # -- peers --------------------------------------------------------------

    def _on_peer(self, msg: dict[str, Any]) -> None:
        if msg["t"] != "sync":
            raise ProtocolError(f"a peer may not send {msg['t']!r}")
        assert self.node is not None
        if self.fed.remote.apply(self.node, msg, time.monotonic(), self):
            self.send({"t": "resync"})
