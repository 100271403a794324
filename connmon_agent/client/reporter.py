"""The one reporter thread of a process: every interval, the state of this
process's pools goes to the local agent.

* One daemon thread per process, started lazily by the first
  :func:`~connmon_agent.client.instrument` (or the first use of a pool in a
  forked child). It sleeps on an Event for the smallest interval of its
  pools.
* Every report is complete enough to rebuild the agent: a full report on
  every (re)connect and every ``protocol.FULL_EVERY`` reports; in between,
  deltas with the pools that changed and the ids of pools that are gone.
  A pool in a delta carries only what changed since it was last sent on
  this connection (:mod:`delta`).
* Sends never block: one non-blocking socket per agent, at most one frame
  waiting. A report that cannot be sent (no agent, agent not reading) is
  dropped and counted; ``dropped`` (cumulative) rides on the next report.
* Reconnects back off exponentially (0.1 s doubling to 5 s, with jitter);
  an agent that refuses the hello is retried after a minute, logged once.
* Fork: ``os.register_at_fork`` plus a pid check. The child drops the
  parent's reporter (closing its copy of the socket without writing to
  it) and starts its own thread when it first uses a pool.

Constraints: nothing here runs in application threads except
:func:`ensure_started`, which only starts a thread; every failure is
counted and logged by :mod:`guard`, never raised.
"""
from __future__ import annotations

import atexit
import random
import socket
import threading
from typing import Any

from .. import protocol
from ..errors import AgentUnavailable
from . import delta, guard, pools, routes, runtime
from .collector import PoolCollector
from .transport import AgentLink, AgentRefused

BACKOFF_FIRST = 0.1
BACKOFF_MAX = 5.0
#: Wait after an agent refused our hello (version mismatch).
REFUSED_WAIT = 60.0
#: Longest wait for the agent's welcome before giving up on a connection.
HANDSHAKE_TIMEOUT = 5.0
#: How long the reporter thread waits for the welcome right after connecting.
HANDSHAKE_WAIT = 0.25
#: A link whose pending frame made no progress for this long (and at least
#: this many intervals) is closed and reconnected.
STALL_TIMEOUT = 10.0
STALL_INTERVALS = 5
#: Checkouts listed per pool when a report would exceed the frame limit.
TRIMMED_CHECKOUTS = 10


class Backoff:
    """Exponential reconnect delays: ``first`` doubling to ``cap``, each
    scaled by a random factor in [0.8, 1.2] so processes restarted together
    do not reconnect together."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> None:
        self.first = first
        self.cap = cap
        self.current = first

    def next(self) -> float:
        delay = self.current * random.uniform(0.8, 1.2)
        self.current = min(self.cap, self.current * 2)
        return delay

    def reset(self) -> None:
        self.current = self.first


class Channel:
    """This process's reports to the agent at one socket path."""

    def __init__(self, socket_path: str, program: str, interval: float, route: Any = None) -> None:
        self.socket_path = socket_path
        #: where to connect (client/routes.py); None: the Unix socket at socket_path
        self.route = route
        self.program = program
        self.interval = interval
        self.link: AgentLink | None = None
        self.backoff = Backoff()
        self.next_attempt = 0.0
        self.next_report = 0.0
        self.handshake_deadline = 0.0
        self.seq = 0
        self.since_full = 0
        self.force_full = True
        #: reports this process could not deliver (cumulative)
        self.dropped = 0
        #: pool id -> version last sent on the current link
        self.sent: dict[str, int] = {}
        #: pool id -> snapshot last sent on the current link (deltas are
        #: made against it: it is what the agent holds)
        self.last: dict[str, dict[str, Any]] = {}
        #: program, dropped and internal_errors as last sent on the link (a
        #: delta repeats them only when they changed)
        self.told: tuple[str, int, int] | None = None

    # -- the loop ----------------------------------------------------------

    def tick(self, now: float, collectors: list[PoolCollector]) -> float:
        """Connect, read, report as due; returns when to run next."""
        link = self.link
        if link is None and now >= self.next_attempt:
            link = self._connect(now)
        if link is not None:
            try:
                link.poll()
                if link.state == "handshake":
                    if now > self.handshake_deadline:
                        raise AgentUnavailable(self.socket_path, "no welcome from the agent")
                elif self.force_full:
                    self.next_report = now  # whole again right after (re)connecting
                if link.pending and link.stalled_since is not None:
                    if now - link.stalled_since > max(STALL_TIMEOUT, STALL_INTERVALS * self.interval):
                        raise AgentUnavailable(self.socket_path, "the agent stopped reading")
            except AgentUnavailable as err:
                self._disconnect(now, err)
                link = None
        if now >= self.next_report:
            self.next_report = now + self.interval
            if link is not None and link.state == "ready":
                try:
                    self._report(link, now, collectors)
                except AgentUnavailable as err:  # the agent went away mid-send
                    self.dropped += 1
                    self._disconnect(now, err)
            else:
                self.dropped += 1
        wake = self.next_report
        if self.link is None:
            wake = min(wake, self.next_attempt)
        elif self.link.state == "handshake":
            wake = min(wake, now + 0.05)
        return wake

    def _connect(self, now: float) -> AgentLink | None:
        hello = protocol.hello(
            "reporter", program=self.program, host=socket.gethostname(),
            pid=runtime.getpid(), interval=self.interval,
        )
        link = None
        try:
            if self.route is None or not self.route.addrs:
                link = AgentLink(self.socket_path)
                link.open(hello)
            else:
                link = routes.connect(self.route, hello)  # local socket, else TCP
            if link.wait_readable(min(HANDSHAKE_WAIT, self.interval)):
                link.poll()
        except AgentUnavailable as err:
            if link is not None:
                link.close()
            self._disconnect(now, err)
            return None
        self.link = link
        self.handshake_deadline = now + HANDSHAKE_TIMEOUT
        self.sent.clear()
        self.last.clear()
        self.told = None
        self.force_full = True
        return link

    def _disconnect(self, now: float, err: AgentUnavailable) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        self.sent.clear()
        self.last.clear()
        self.told = None
        self.force_full = True
        if isinstance(err, AgentRefused):
            self.next_attempt = now + REFUSED_WAIT
            guard.log_once("refused", "connmon: the agent at %s refused this reporter: %s", self.socket_path, err.reason)
        else:
            self.next_attempt = now + self.backoff.next()

    def _report(self, link: AgentLink, now: float, collectors: list[PoolCollector]) -> None:
        if link.pending and not link.flush(now):
            self.dropped += 1  # the agent is not reading: do not even build it
            return
        full = self.force_full or self.since_full + 1 >= protocol.FULL_EVERY
        msg, versions, gone, snaps = self.build(now, collectors, full)
        frame = _encode(msg)
        if frame is None or not link.send(frame, now):
            self.dropped += 1
            return
        if link.state == "ready" and link.proto is not None:
            self.backoff.reset()
        self.sent_ok(msg, versions, gone, snaps)

    def sent_ok(self, msg: dict[str, Any], versions: dict[str, int], gone: list[str], snaps: dict[str, dict[str, Any]]) -> None:
        """Record that the report :meth:`build` made (``msg`` and the rest of
        what it returned) went out: the next deltas are made against what it
        told the agent."""
        full = msg["full"]
        told = self.told or ("", 0, 0)
        self.told = (msg.get("program", told[0]), msg.get("dropped", told[1]), msg.get("internal_errors", told[2]))
        self.seq += 1
        if full:
            self.sent = dict(versions)
            self.last = snaps
            self.force_full = False
            self.since_full = 0
        else:
            self.sent.update(versions)
            self.last.update(snaps)
            self.since_full += 1
        for pool_id in gone:
            self.sent.pop(pool_id, None)
            self.last.pop(pool_id, None)

    def build(
        self, now: float, collectors: list[PoolCollector], full: bool
    ) -> tuple[dict[str, Any], dict[str, int], list[str], dict[str, dict[str, Any]]]:
        """The report message, the versions of the pools in it, the ids it
        declares gone and the snapshots its pool records were made from."""
        versions: dict[str, int] = {}
        records: list[dict[str, Any]] = []
        snaps: dict[str, dict[str, Any]] = {}
        live: set[str] = set()
        last = self.last
        now = runtime.clock()  # ages are relative to the moment of sending
        for c in collectors:
            version = c.version  # read before the snapshot: a change during it is resent
            if not full and self.sent.get(c.id) == version:
                live.add(c.id)
                continue
            snap = c.snapshot(now)
            if snap is None:
                continue
            live.add(c.id)
            if len(snaps) < protocol.MAX_POOLS:
                before = None if full else last.get(c.id)
                record = snap if before is None else delta.pool_delta(before, snap)
                if record is not None:
                    records.append(record)
                versions[c.id] = version
                snaps[c.id] = snap
        gone = [pool_id for pool_id in self.sent if pool_id not in live][: protocol.MAX_POOLS]
        msg: dict[str, Any] = {"t": "report", "seq": self.seq, "full": full}
        told = self.told
        if full or told is None or self.program != told[0]:
            msg["program"] = self.program
        if full or told is None or self.dropped != told[1]:
            msg["dropped"] = self.dropped
        if full or told is None or guard.internal_errors != told[2]:
            msg["internal_errors"] = guard.internal_errors
        if full or gone:
            msg["gone"] = gone
        msg["pools"] = records
        return msg, versions, gone, snaps

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None


def _encode(msg: dict[str, Any]) -> bytes | None:
    frame = protocol.encode(msg)
    if len(frame) - protocol.HEADER_SIZE <= protocol.MAX_REPORT_FRAME:
        return frame
    for pool in msg["pools"]:
        if "checkouts" in pool:
            pool["checkouts"] = pool["checkouts"][:TRIMMED_CHECKOUTS]
    frame = protocol.encode(msg)
    if len(frame) - protocol.HEADER_SIZE <= protocol.MAX_REPORT_FRAME:
        return frame
    guard.failed("report too large")
    return None


class Reporter:
    """The reporting thread of one process (one pid)."""

    def __init__(self) -> None:
        self.pid = runtime.getpid()
        self.wake = threading.Event()
        self.channels: dict[str, Channel] = {}
        self.thread: threading.Thread | None = None
        self.stopping = False

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive() and not self.stopping

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="connmon-reporter", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping and runtime.getpid() == self.pid:
            try:
                delay = self.tick(runtime.clock())
            except Exception as err:
                guard.failed("reporter", err)
                delay = 1.0
            self.wake.wait(min(max(delay, 0.0), 60.0))
            self.wake.clear()
        if runtime.getpid() == self.pid:
            self._close_channels()

    def tick(self, now: float) -> float:
        """One round over every channel; seconds until the next one is due."""
        groups: dict[str, list[PoolCollector]] = {}
        for _pool_id, c in pools.collectors():
            if c is not None and c.visible:
                groups.setdefault(c.config.channel_key, []).append(c)
        pools.prune()
        wake = now + 60.0
        for path in list(groups) + [p for p in self.channels if p not in groups]:
            members = groups.get(path, [])
            ch = self.channels.get(path)
            if ch is None:
                first = members[0].config
                ch = self.channels[path] = Channel(path, first.program_name, first.interval, first.route)
            elif not members and not ch.sent:
                ch.close()  # nothing left to report, nothing left to declare gone
                del self.channels[path]
                continue
            if members:
                ch.interval = min(m.config.interval for m in members)
            try:
                wake = min(wake, ch.tick(now, members))
            except Exception as err:
                guard.failed("reporter", err)
                wake = min(wake, now + 1.0)
        return wake - runtime.clock()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and close the sockets (same process only)."""
        self.stopping = True
        self.wake.set()
        t = self.thread
        if t is not None and t is not threading.current_thread() and t.is_alive():
            t.join(timeout)
        if not (t is not None and t.is_alive()):
            self._close_channels()

    def abandon(self) -> None:
        """In a forked child: let go of the parent's reporter. Closes the
        child's copies of the sockets without writing to them."""
        self.stopping = True
        for ch in list(self.channels.values()):
            ch.close()

    def _close_channels(self) -> None:
        for ch in list(self.channels.values()):
            ch.close()


_reporter: Reporter | None = None
_lock = threading.Lock()
_lock_pid = runtime.getpid()


def ensure_started() -> Reporter:
    """The reporter of this process, its thread running (started now if
    needed). Cheap when it already runs."""
    global _reporter, _lock, _lock_pid
    r = _reporter
    pid = runtime.getpid()
    if r is not None and r.pid == pid and r.alive:
        return r
    if _lock_pid != pid:
        _lock = threading.Lock()  # the parent's may have been held at the fork
        _lock_pid = pid
    with _lock:
        r = _reporter
        if r is not None and r.pid != pid:
            r.abandon()
            r = None
        if r is None or r.stopping:
            r = _reporter = Reporter()
        if not r.alive:
            r.start()
    return r


def shutdown(timeout: float = 1.0) -> None:
    """Stop this process's reporter thread and close its sockets. The next
    instrumented pool event starts a new one. Never raises."""
    global _reporter
    try:
        r, _reporter = _reporter, None
        if r is not None and r.pid == runtime.getpid():
            r.stop(timeout)
        elif r is not None:
            r.abandon()
    except Exception as err:
        guard.failed("shutdown", err)


def current() -> Reporter | None:
    """This process's reporter, if it was started (for tests and tools)."""
    r = _reporter
    return r if r is not None and r.pid == runtime.getpid() else None


def _after_fork_child() -> None:
    global _reporter, _lock, _lock_pid
    _lock = threading.Lock()
    _lock_pid = runtime.getpid()
    r, _reporter = _reporter, None
    if r is not None:
        r.abandon()


runtime.on_fork_child(_after_fork_child)
atexit.register(shutdown, 0.2)
