"""This node's outgoing link to one peer: connect (with backoff), say hello
as a ``peer`` (authenticated when the service has a secret), then carry
this node's ``sync`` messages to it.

The link only ever sends this node's own state; the peer answers with
nothing but ``resync`` (it missed a delta: a full sync follows) or
``error``. A peer that does not read gets no unbounded buffer: while more
than ``MAX_BUFFER`` bytes wait, versions are skipped and the next one sent
is full. Event loop only.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import TYPE_CHECKING, Any

from .. import auth, protocol
from ..config import Node
from ..errors import ConnmonError, ProtocolError

if TYPE_CHECKING:
    from .federation import Federation

log = logging.getLogger("connmon.agent")

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
CONNECT_TIMEOUT = 3.0
HANDSHAKE_TIMEOUT = 5.0
#: The largest frame a peer may send back on our link (welcome, resync, error).
MAX_INBOUND = 64 << 10
#: Unsent bytes above which versions are skipped for this peer.
MAX_BUFFER = 64 << 20


class PeerLink:
    """The connection from this node to ``node`` (reconnecting forever)."""

    def __init__(self, fed: "Federation", node: Node) -> None:
        self.fed = fed
        self.node = node
        self.connected = False
        #: the peer holds a full version of ours: deltas may follow
        self.synced = False
        self.since = time.monotonic()
        self.error = ""
        self.skipped = 0
        self._writer: asyncio.StreamWriter | None = None
        self._sealer: auth.Sealer | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        self._drop()

    # -- sending ------------------------------------------------------------

    def send(self, payload: bytes) -> None:
        """Send one ``sync`` payload (JSON bytes); a full one next time if
        the peer is not reading."""
        writer = self._writer
        if writer is None or not self.connected:
            return
        if writer.transport.get_write_buffer_size() > MAX_BUFFER:
            self.skipped += 1
            self.synced = False
            return
        if self._sealer is not None:
            frame = self._sealer.seal(payload)
        else:
            frame = protocol.HEADER.pack(len(payload)) + payload
        self.fed.bytes_out += len(frame)
        self.fed.syncs_sent += 1
        writer.write(frame)

    # -- the connection -------------------------------------------------------

    async def _run(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except (OSError, ConnmonError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError) as err:
                self._failed(err)
            except Exception:
                log.exception("link to peer %s failed", self.node.name)
            if self.connected:
                delay = BACKOFF_FIRST
            self._drop()
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(BACKOFF_MAX, delay * 2)

    def _failed(self, err: BaseException) -> None:
        reason = str(err) or type(err).__name__
        if isinstance(err, asyncio.IncompleteReadError):
            reason = "the peer closed the connection"
        if self.connected:
            log.warning("link to peer %s (%s) lost: %s", self.node.name, self.node.hostname, reason)
        elif self._failures == 0 or reason != self.error:
            log.info("cannot reach peer %s (%s): %s; retrying", self.node.name, self.node.hostname, reason)
        self._failures += 1
        self.error = reason

    def _drop(self) -> None:
        writer, self._writer = self._writer, None
        if self.connected:
            self.since = time.monotonic()
        self.connected = False
        self.synced = False
        self._sealer = None
        if writer is not None:
            writer.transport.abort()

    async def _session(self) -> None:
        host, port = self.node.address
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_TIMEOUT)
        self._writer = writer
        opener = await asyncio.wait_for(self._handshake(reader, writer), HANDSHAKE_TIMEOUT)
        self.connected = True
        self.since = time.monotonic()
        self._failures = 0
        self.error = ""
        log.info("linked to peer %s (%s)", self.node.name, self.node.hostname)
        self.fed.link_up(self)
        while True:
            msg = await self._read(reader, opener)
            if msg["t"] == "resync":
                self.fed.send_full(self)
            elif msg["t"] == "error":
                raise ProtocolError(f"peer refused: {msg.get('message')}")
            # anything else is from a newer agent: ignored

    async def _handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> auth.Opener | None:
        fed = self.fed
        hello = protocol.hello("peer", node=fed.node.name, service=fed.options.service,
                               host=fed.server.options.host, boot=fed.outbox.boot)
        opener = None
        if fed.secret is not None:
            shake = auth.ClientHandshake(fed.secret)
            writer.write(shake.hello_frame(hello))
            writer.write(shake.answer(await self._read(reader, None)))
            self._sealer, opener = shake.sealer, shake.opener
        else:
            writer.write(protocol.encode(hello))
        welcome = await self._read(reader, opener)
        if welcome["t"] == "error":
            raise ProtocolError(f"refused: {welcome.get('message')}")
        if welcome["t"] != "welcome" or welcome.get("role") != "peer":
            raise ProtocolError(f"answered {welcome['t']!r} to a peer hello")
        if welcome.get("node") != self.node.name:
            raise ProtocolError(f"answered as node {welcome.get('node')!r}, not {self.node.name!r}")
        return opener

    async def _read(self, reader: asyncio.StreamReader, opener: auth.Opener | None) -> dict[str, Any]:
        (size,) = protocol.HEADER.unpack(await reader.readexactly(protocol.HEADER_SIZE))
        if size == 0 or size > MAX_INBOUND:
            raise ProtocolError(f"peer sent a frame of {size} bytes")
        body = await reader.readexactly(size)
        if opener is not None:
            return opener.open_msg(body)
        return protocol.decode_body(body)
