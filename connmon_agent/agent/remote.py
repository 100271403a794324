"""What this agent holds of other nodes: the latest synced state of every
origin (one peer node, and the hosts whose processes it reports).

An origin is named by its node name; its state carries a version ``(boot,
seq)``: ``boot`` chosen when that agent started, ``seq`` counting its
syncs. A full sync replaces the origin's state when it is newer (same
boot, higher seq; or a newer boot; or any other boot once the old one's
link is gone); a delta applies only on top of exactly the version it was
made from (``base``), so duplicated, reordered or missed updates are
ignored and counted, never applied twice or out of order — a gap asks the
origin for a full sync instead.

Ages on the wire are relative to the moment of sending and are brought
forward here with this agent's own monotonic clock, so clock skew between
hosts changes nothing. Remote processes are :class:`ProcessRecord` objects
(``origin`` set), so the registry builds the status from local and remote
records alike. Event loop only; nothing here touches sockets.
"""
from __future__ import annotations

import logging
from typing import Any, Hashable, Iterator

from .. import protocol
from ..errors import ProtocolError
from .poolstate import PoolState
from .registry import ProcessRecord

log = logging.getLogger("connmon.agent")

#: Hosts one origin may name (its own plus those of its TCP reporters).
MAX_HOSTS = 1024


class Origin:
    """One peer node's synced state."""

    __slots__ = ("node", "host", "boot", "seq", "hosts", "processes", "heard", "stale", "since", "link")

    def __init__(self, node: str, host: str, boot: int, seq: int, now: float) -> None:
        self.node = node
        self.host = host
        self.boot = boot
        self.seq = seq
        self.hosts: list[str] = [host]
        self.processes: dict[Hashable, ProcessRecord] = {}
        #: monotonic time of the last authentic message from this origin
        self.heard = now
        #: link lost or silent: shown stale; ``since`` is when that began
        self.stale = False
        self.since = now
        #: the connection its state arrives on (None once lost)
        self.link: Any = None


class RemoteStore:
    """Every origin's state, with the bounds that keep a peer from growing
    this agent without limit."""

    def __init__(self, max_processes: int = 100_000) -> None:
        self.origins: dict[str, Origin] = {}
        self.max_processes = max_processes
        self.generation = 0
        self.stats = {"sync_received": 0, "sync_applied": 0, "sync_ignored": 0, "sync_gaps": 0}

    def records(self) -> Iterator[ProcessRecord]:
        for origin in self.origins.values():
            yield from origin.processes.values()

    def process_count(self) -> int:
        return sum(len(o.processes) for o in self.origins.values())

    # -- sync messages ----------------------------------------------------

    def apply(self, node: str, msg: dict[str, Any], now: float, link: Any = None) -> bool:
        """Apply one ``sync`` from ``node`` (received on ``link``); True
        when this side needs a full sync (a delta it cannot apply).
        ProtocolError for a malformed or oversized message (nothing of it
        is applied)."""
        self.stats["sync_received"] += 1
        host, boot, seq, full = _header(msg, node)
        origin = self.origins.get(node)
        if origin is not None:
            origin.heard = now
            if origin.link is link:
                origin.stale = False
        if full:
            if origin is not None and not self._newer(origin, boot, seq):
                self.stats["sync_ignored"] += 1
                return False
            hosts, procs = _full_body(msg, host, self.max_processes)
            new = Origin(node, host, boot, seq, now)
            new.hosts = hosts
            new.link = link
            for entry in procs:
                rec = _record(entry, new, now)
                new.processes[rec.key] = rec
            self.origins[node] = new
            self.stats["sync_applied"] += 1
            self.generation += 1
            if origin is None or origin.boot != boot:
                log.info("peer %s (host %s): full state, %d processes", node, host, len(new.processes))
            return False
        if origin is None or origin.boot != boot:
            self.stats["sync_gaps"] += 1
            return True
        if seq <= origin.seq:
            self.stats["sync_ignored"] += 1  # a duplicate or an old update
            return False
        base = msg.get("base")
        if base != origin.seq:
            self.stats["sync_gaps"] += 1
            return True
        self._delta(origin, msg, now)
        origin.seq = seq
        origin.link = link
        origin.stale = False
        self.stats["sync_applied"] += 1
        self.generation += 1
        return False

    def _newer(self, origin: Origin, boot: int, seq: int) -> bool:
        if boot == origin.boot:
            return seq > origin.seq
        # A restarted origin: a later boot always wins; an earlier one only
        # once the old one's link is gone (its clock may have gone back).
        return boot > origin.boot or origin.stale

    def _delta(self, origin: Origin, msg: dict[str, Any], now: float) -> None:
        hosts = msg.get("hosts")
        if hosts is not None:
            origin.hosts = _hosts(hosts, origin.host)
        procs = msg.get("procs", [])
        touch = msg.get("touch", [])
        gone = msg.get("gone", [])
        if not isinstance(procs, list) or not isinstance(touch, list) or not isinstance(gone, list):
            raise ProtocolError("sync.procs, .touch and .gone must be lists")
        checked = [_check_process(p, origin.hosts) for p in procs]
        removed = [_key(k, "gone") for k in gone]
        touched = [_touch(t) for t in touch]
        if len(origin.processes) + len(checked) > self.max_processes:
            raise ProtocolError(f"peer {origin.node} sends more than {self.max_processes} processes")
        for key in removed:
            origin.processes.pop(key, None)
        for entry in checked:
            rec = _record(entry, origin, now)
            origin.processes[rec.key] = rec
        for key, age in touched:
            rec = origin.processes.get(key)
            if rec is not None:
                rec.last = now - age

    # -- links and silence ------------------------------------------------

    def link_lost(self, node: str, link: Any, now: float) -> None:
        """The connection ``node``'s state came on closed: stale at once."""
        origin = self.origins.get(node)
        if origin is not None and origin.link is link and not origin.stale:
            origin.stale = True
            origin.since = now
            origin.link = None
            self.generation += 1
            log.warning("peer %s (host %s): link lost; its hosts are stale", node, origin.host)

    def sweep(self, now: float, stale_after: float, drop_after: float) -> None:
        """Mark origins silent for ``stale_after`` stale; forget those
        stale for ``drop_after``."""
        for node, origin in list(self.origins.items()):
            if not origin.stale and now - origin.heard > stale_after:
                origin.stale = True
                origin.since = now
                self.generation += 1
                log.warning("peer %s (host %s): silent for %.1fs; its hosts are stale", node, origin.host, now - origin.heard)
            if origin.stale and now - origin.since > drop_after:
                del self.origins[node]
                self.generation += 1
                log.warning("peer %s (host %s): stale for %.0fs; dropped", node, origin.host, now - origin.since)


# -- validation -----------------------------------------------------------


def _header(msg: dict[str, Any], node: str) -> tuple[str, int, int, bool]:
    if msg.get("node") != node:
        raise ProtocolError(f"peer {node} sent a sync for origin {protocol._short(msg.get('node'))}; a node speaks only for itself")
    host = msg.get("host")
    boot = msg.get("boot")
    seq = msg.get("seq")
    full = msg.get("full")
    if not isinstance(host, str) or not host or len(host) > protocol.MAX_STR:
        raise ProtocolError("sync.host must be a non-empty string")
    if type(boot) is not int or not 0 <= boot <= protocol.MAX_INT:
        raise ProtocolError("sync.boot must be a non-negative integer")
    if type(seq) is not int or not 0 <= seq <= protocol.MAX_INT:
        raise ProtocolError("sync.seq must be a non-negative integer")
    if type(full) is not bool:
        raise ProtocolError("sync.full must be true or false")
    return host, boot, seq, full


def _hosts(hosts: Any, own: str) -> list[str]:
    if not isinstance(hosts, list) or len(hosts) > MAX_HOSTS:
        raise ProtocolError(f"sync.hosts must be a list of at most {MAX_HOSTS} host names")
    for h in hosts:
        if not isinstance(h, str) or not h or len(h) > protocol.MAX_STR:
            raise ProtocolError("sync.hosts holds host names (strings)")
    out = sorted(set(hosts) | {own})
    return out


def _full_body(msg: dict[str, Any], host: str, max_processes: int) -> tuple[list[str], list[dict[str, Any]]]:
    hosts = _hosts(msg.get("hosts", [host]), host)
    procs = msg.get("procs")
    if not isinstance(procs, list):
        raise ProtocolError("sync.procs must be a list")
    if len(procs) > max_processes:
        raise ProtocolError(f"peer sends {len(procs)} processes, more than the {max_processes} accepted")
    return hosts, [_check_process(p, hosts) for p in procs]


def _check_process(p: Any, hosts: list[str]) -> dict[str, Any]:
    if type(p) is not dict:
        raise ProtocolError("a synced process must be an object")
    if p.get("host") not in hosts:
        raise ProtocolError(f"synced process of host {protocol._short(p.get('host'))} not named in sync.hosts")
    pid = p.get("pid")
    if type(pid) is not int or not 0 <= pid <= protocol.MAX_INT:
        raise ProtocolError("synced process pid must be a non-negative integer")
    for key in ("started", "age"):
        v = p.get(key)
        if type(v) not in (int, float) or not 0 <= v <= protocol.MAX_NUMBER:
            raise ProtocolError(f"synced process {key} must be a non-negative number")
    uid = p.get("uid")
    if uid is not None and (type(uid) is not int or not 0 <= uid <= protocol.MAX_INT):
        raise ProtocolError("synced process uid must be an integer or null")
    program = p.get("program", "")
    if not isinstance(program, str) or len(program) > protocol.MAX_STR:
        raise ProtocolError("synced process program must be a string")
    for key in ("dropped", "internal_errors"):
        value = p.get(key, 0)
        if type(value) is not int or not 0 <= value <= protocol.MAX_INT:
            raise ProtocolError(f"synced process {key} must be a non-negative integer")
    # The pools are exactly a full report's: the same validation and bounds.
    protocol.validate_report({"seq": 0, "full": True, "pools": p.get("pools")})
    return p


def _key(k: Any, what: str) -> tuple[str, int, float]:
    if (
        type(k) is not list
        or len(k) != 3
        or not isinstance(k[0], str)
        or type(k[1]) is not int
        or type(k[2]) not in (int, float)
    ):
        raise ProtocolError(f"sync.{what} entries are [host, pid, started]")
    return (k[0], k[1], k[2])


def _touch(t: Any) -> tuple[tuple[str, int, float], float]:
    if type(t) is not list or len(t) != 4:
        raise ProtocolError("sync.touch entries are [host, pid, started, age]")
    age = t[3]
    if type(age) not in (int, float) or not 0 <= age <= protocol.MAX_NUMBER:
        raise ProtocolError("sync.touch age must be a non-negative number")
    return _key(t[:3], "touch"), age


def _record(p: dict[str, Any], origin: Origin, now: float) -> ProcessRecord:
    rec = ProcessRecord(p["host"], p["pid"], p["started"], p.get("uid"), p.get("program", ""))
    rec.origin = origin
    rec.pools = {pool["id"]: PoolState.whole(pool, now) for pool in p["pools"]}
    rec.last = now - p["age"]
    rec.dropped = p.get("dropped", 0)
    rec.internal_errors = p.get("internal_errors", 0)
    return rec
