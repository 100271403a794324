"""The agent's listener: one :class:`Connection` per client on the Unix socket.

Low-level ``asyncio.Protocol`` (``data_received`` + :class:`FrameDecoder`)
rather than streams: a connection costs one small object and a report one
callback. Every malformed, oversized or out-of-place frame closes only the
connection that sent it; it is counted and logged (at most one line a minute
per offending pid) and everyone else is served on.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any, Callable

from .. import __version__, protocol
from ..errors import ProtocolError
from . import memory
from .options import AgentOptions
from .garbage import GarbageClock
from .procwatch import ProcWatch, peer_credentials, start_time
from .registry import SNAPSHOT_TTL, ProcessRecord, Registry

log = logging.getLogger("connmon.agent")

#: Largest frame before the hello says who is talking, and from a console.
SMALL_FRAME = 64 << 10
#: The largest frame each role may send.
MAX_FRAME = {"reporter": protocol.MAX_REPORT_FRAME, "console": SMALL_FRAME}
#: After dropping a state frame this big, give free memory back (memory.trim).
TRIM_ABOVE = 4 << 20


class Stats:
    """The agent's counters (``agent.stats`` in the status JSON)."""

    __slots__ = (
        "bad_frames", "rejected", "version_mismatches", "hello_timeouts",
        "replaced", "exited", "silent_dropped", "skipped_ticks",
        # TCP links (agent/tcp.py): frames refused by authentication
        "forged", "tampered", "replayed", "oversized",
    )

    def __init__(self) -> None:
        for name in self.__slots__:
            setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Connection(asyncio.Protocol):
    """One client: says hello, then speaks as its role. Event loop only."""

    __slots__ = ("server", "transport", "decoder", "role", "rec", "peer", "timer", "handler", "paused", "closed")

    def __init__(self, server: "AgentServer") -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.decoder = protocol.FrameDecoder(SMALL_FRAME)
        self.role: str | None = None
        self.rec: ProcessRecord | None = None
        self.peer: tuple[int, int, int] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.handler: Callable[[dict[str, Any]], None] = self._on_hello
        self.paused = False
        self.closed = False

    # -- asyncio callbacks --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        server.connections.add(self)
        server.registry.touch()
        self._identify(transport)
        self.timer = server.loop.call_later(server.options.hello_timeout, self._hello_timeout)

    def _identify(self, transport: asyncio.BaseTransport) -> None:
        """Note who is at the other end (here: the Unix peer's credentials)."""
        sock = transport.get_extra_info("socket")
        try:
            self.peer = peer_credentials(sock)
        except OSError:
            self.peer = None

    def data_received(self, data: bytes) -> None:
        try:
            for msg in self.decoder.feed(data):
                if self.closed:
                    return
                self.handler(msg)
        except ProtocolError as err:
            self.server.bad_frame(self, err)

    def eof_received(self) -> bool:
        pending = self.pending_bytes()
        if pending:
            self.server.bad_frame(self, ProtocolError(f"connection closed inside a frame ({pending} bytes)"))
        return False  # close our side too

    def pending_bytes(self) -> int:
        """Bytes of an incomplete frame received."""
        return self.decoder.pending

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._cancel_timer()
        self.server.connection_lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False

    # -- roles --------------------------------------------------------------

    def _on_hello(self, msg: dict[str, Any]) -> None:
        protocol.validate_hello(msg)
        version = self._negotiate(msg)
        if version is None:
            return
        server = self.server
        role = msg["role"]
        if role == "reporter":
            if not server.accept_reporter(self, msg):
                return
            rec = self.rec
            assert rec is not None
            self.handler = self._on_report
            self.send(protocol.welcome(version, role=role, host=rec.host, pid=rec.pid, started=rec.started))
        elif role == "console":
            self.handler = self._on_console
            self.send(protocol.welcome(version, role=role, host=server.options.host, pid=os.getpid()))
        else:
            server.reject(self, "role", f"role {role!r} is not served on this socket")
            return
        self.role = role
        self.decoder.max_size = MAX_FRAME[role]

    def _negotiate(self, hello: dict[str, Any]) -> int | None:
        """The hello is in: the protocol version to speak; None once a hello
        with no version in common was answered (an ``error`` naming both
        ranges) and closed."""
        self._cancel_timer()
        try:
            return protocol.negotiate(hello)
        except ProtocolError as err:
            self.server.stats.version_mismatches += 1
            self.server.reject(self, "version", str(err))
            return None

    def _on_report(self, msg: dict[str, Any]) -> None:
        if msg["t"] != "report":
            raise ProtocolError(f"a reporter may not send {msg['t']!r}")
        protocol.validate_report(msg)
        self.server.registry.ingest(self.rec, msg, time.monotonic())  # type: ignore[arg-type]

    def _on_console(self, msg: dict[str, Any]) -> None:
        t = msg["t"]
        if t == "query":
            self.write_frame(self.server.state_frame())
        elif t == "subscribe":
            interval = protocol.validate_subscribe(msg)
            self._cancel_timer()
            self.server.registry.touch()
            self._tick(interval)
        else:
            raise ProtocolError(f"a console may not send {t!r}")

    def _tick(self, interval: float) -> None:
        if self.closed:
            return
        transport = self.transport
        assert transport is not None
        if self.paused or transport.get_write_buffer_size() > self.server.options.subscriber_buffer:
            # A slow subscriber gets fewer states, never an unbounded buffer.
            self.server.stats.skipped_ticks += 1
            self.server.registry.touch()
        else:
            self.write_frame(self.server.state_frame())
        self.timer = self.server.loop.call_later(interval, self._tick, interval)

    # -- helpers ------------------------------------------------------------

    @property
    def subscribed(self) -> bool:
        return self.role == "console" and self.timer is not None

    def send(self, msg: dict[str, Any]) -> None:
        if not self.closed and self.transport is not None:
            self.write_frame(protocol.encode(msg))

    def write_frame(self, frame: bytes) -> None:
        """Write one encoded frame (a TCP link seals it first)."""
        self.transport.write(frame)  # type: ignore[union-attr]

    def close(self) -> None:
        """Close after flushing what is queued (a few bytes: an error or welcome)."""
        if not self.closed:
            self.closed = True
            self._cancel_timer()
            if self.transport is not None:
                self.transport.close()

    def _cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _hello_timeout(self) -> None:
        self.timer = None
        self.server.stats.hello_timeouts += 1
        self.server.registry.touch()
        self.server.log_offender(self, "sent no hello within %.1fs; dropped", self.server.options.hello_timeout)
        self.close()

    def describe(self) -> str:
        if self.rec is not None:
            return f"{self.rec.program or 'reporter'} pid {self.rec.pid}"
        if self.peer is not None:
            return f"pid {self.peer[0]}"
        return "unknown peer"


class AgentServer:
    """Listener, registry and process watch of one agent. Event loop only."""

    def __init__(self, options: AgentOptions, loop: asyncio.AbstractEventLoop) -> None:
        self.options = options
        self.loop = loop
        self.registry = Registry(stale_after=options.stale_after)
        self.stats = Stats()
        self.connections: set[Connection] = set()
        self.procwatch = ProcWatch(loop, self._process_exited)
        self.garbage = GarbageClock(loop)
        self.started = time.time()
        self._started_mono = time.monotonic()
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._offenders: dict[int, float] = {}
        self._drop_pending = False
        self._uid = os.getuid()
        #: the TCP listener and peer links of a cluster node (agent/federation.py)
        self.federation: Any = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on an already bound and listening Unix socket."""
        memory.tune()
        if self.options.cluster is not None:
            # The TCP listener first: once the Unix socket answers, the
            # whole agent is up (tools and tests take that as "ready").
            from .federation import Federation

            self.federation = Federation(self, self.options.cluster)
            await self.federation.start()
        self._server = await self.loop.create_unix_server(lambda: Connection(self), sock=sock)
        self.procwatch.start()
        self.garbage.start()
        self._sweeper = self.loop.create_task(self._sweep_forever())

    async def close(self) -> None:
        """Stop listening and close every client connection."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            if conn.transport is not None:
                conn.transport.abort()
        self.procwatch.close()
        self.garbage.close()
        if self.federation is not None:
            await self.federation.close()
        if self._server is not None:
            await self._server.wait_closed()
        # Let the transports run their connection_lost callbacks.
        await asyncio.sleep(0)

    # -- state ----------------------------------------------------------------

    def agent_info(self) -> dict[str, Any]:
        stats = self.stats.as_dict()
        stats["clients"] = len(self.connections)
        stats["subscribers"] = sum(1 for c in self.connections if c.subscribed)
        stats["ignored_pools"] = self.registry.ignored_pools
        cluster = None
        if self.federation is not None:
            stats.update(self.federation.stats())
            cluster = self.federation.info()
        return {
            "host": self.options.host,
            "pid": os.getpid(),
            "version": __version__,
            "socket": self.options.socket_path,
            "uptime": round(time.monotonic() - self._started_mono, 3),
            "started": round(self.started, 3),
            "stats": stats,
            **({"cluster": cluster} if cluster is not None else {}),
        }

    def state(self) -> dict[str, Any]:
        return self.registry.snapshot(self.agent_info())

    def state_frame(self) -> bytes:
        frame = self.registry.state_frame(self.agent_info())
        if not self._drop_pending:
            # Kept only as long as it may be served again (SNAPSHOT_TTL).
            self._drop_pending = True
            self.loop.call_later(SNAPSHOT_TTL, self._drop_cached)
        return frame

    def _drop_cached(self) -> None:
        self._drop_pending = False
        if self.registry.drop_cached() >= TRIM_ABOVE:
            memory.trim()

    # -- reporters --------------------------------------------------------------

    def accept_reporter(self, conn: Connection, hello: dict[str, Any]) -> bool:
        """Name the process behind ``conn`` and track it; False if refused."""
        opts = self.options
        program = hello.get("program") or ""
        interval = hello.get("interval")
        if opts.trust_hello_pid:
            pid = hello.get("pid")
            if not isinstance(pid, int):
                self.reject(conn, "identity", "hello.pid is required when the agent trusts hello pids")
                return False
            rec = ProcessRecord(hello.get("host") or opts.host, pid, float(hello.get("started") or time.time()), None, program, conn, interval)
            self._track(conn, rec, watch=False)
            return True
        if conn.peer is None:
            self.reject(conn, "identity", "cannot read the peer credentials of this connection")
            return False
        pid, uid, _gid = conn.peer
        if not opts.allow_any_uid and uid not in (self._uid, 0):
            self.reject(conn, "identity", f"reporters must run as uid {self._uid} (this one is uid {uid})")
            return False
        started = start_time(pid)
        if started is None:
            self.reject(conn, "identity", f"process {pid} vanished")
            return False
        rec = ProcessRecord(opts.host, pid, started, uid, program, conn, interval)
        return self._track(conn, rec, watch=True)

    def _track(self, conn: Connection, rec: ProcessRecord, watch: bool) -> bool:
        conn.rec = rec
        old = self.registry.register(rec)
        if old is not None and old.conn is not None and old.conn is not conn:
            # The same process connected again: the new connection wins.
            self.stats.replaced += 1
            self.registry.touch()
            old.conn.rec = None
            old.conn.close()
        if watch and not self.procwatch.watch(rec.key, rec.pid, rec.started):
            self.registry.remove(rec.key, rec)
            conn.rec = None
            self.reject(conn, "identity", f"process {rec.pid} exited")
            return False
        log.debug("reporter %s pid %d on %s connected", rec.program, rec.pid, rec.host)
        return True

    def _process_exited(self, key: Any) -> None:
        rec = self.registry.remove(key)
        if rec is not None:
            self.stats.exited += 1
            self.registry.touch()
            log.info("process %d (%s) exited; forgotten", rec.pid, rec.program or "?")
            if rec.conn is not None:
                rec.conn.rec = None
                rec.conn.close()

    def _forget(self, rec: ProcessRecord) -> None:
        if self.registry.remove(rec.key, rec) is not None:
            self.procwatch.unwatch(rec.key)

    def connection_lost(self, conn: Connection) -> None:
        self.connections.discard(conn)
        self.registry.touch()
        rec = conn.rec
        if rec is not None:
            conn.rec = None
            self._forget(rec)

    def sweep_silent(self, now: float) -> None:
        """Forget processes that have sent nothing for ``drop_after`` seconds."""
        limit = self.options.drop_after
        if limit <= 0:
            return
        silent = [rec for rec in self.registry.processes.values() if now - rec.last > limit]
        for rec in silent:
            self.stats.silent_dropped += 1
            self.registry.touch()
            log.warning("process %d (%s) silent for %.0fs; dropped", rec.pid, rec.program or "?", now - rec.last)
            self._forget(rec)
            if rec.conn is not None:
                rec.conn.rec = None
                rec.conn.close()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                self.sweep_silent(time.monotonic())
            except Exception:  # the sweep must outlive any one bad record
                log.exception("silent-process sweep failed")

    # -- misbehaving clients --------------------------------------------------

    def bad_frame(self, conn: Connection, err: ProtocolError) -> None:
        self.stats.bad_frames += 1
        self.registry.touch()
        self.log_offender(conn, "bad frame, connection closed: %s", err)
        conn.send(protocol.error("protocol", str(err)))
        conn.close()

    def reject(self, conn: Connection, code: str, message: str) -> None:
        self.stats.rejected += 1
        self.registry.touch()
        self.log_offender(conn, "refused (%s): %s", code, message)
        conn.send(protocol.error(code, message))
        conn.close()

    def log_offender(self, conn: Connection, fmt: str, *args: Any) -> None:
        """Log about ``conn`` at most once a minute per peer pid."""
        pid = conn.peer[0] if conn.peer is not None else -1
        now = time.monotonic()
        last = self._offenders.get(pid)
        if last is not None and now - last < 60.0:
            return
        if len(self._offenders) > 4096:
            self._offenders.clear()
        self._offenders[pid] = now
        log.warning("%s: " + fmt, conn.describe(), *args)
