"""What this node tells its peers: its own processes, as ``sync`` messages.

Every ``sync_interval`` the outbox makes one version of this node's state,
``(boot, seq)``: ``boot`` is fixed when the agent starts, ``seq`` grows by
one per version. A *full* sync carries every local process; a *delta*
carries the processes whose pools, program or drop count changed since the
previous version (``base``), ``touch`` entries for processes that only
reported again (their age), and ``gone`` keys; an empty delta is the
heartbeat. Only local processes are ever sent (never what peers sent us),
so the full mesh has no loops and no duplicates.

Payloads are compressed (``Z`` + zlib of the JSON, see :func:`pack`):
the processes of a host repeat the same keys, configs and histogram
bounds, so a busy host's deltas shrink about tenfold on the peer links.

A process changed when its ``changes`` count (registry.ingest: one more
for every report that carried pools or gone ones) differs from the one last
sent. Ages are relative to the moment of sending (the receiver brings them
forward with its own clock). Event loop only; no sockets.
"""
from __future__ import annotations

import json
import time
import zlib
from typing import Any, Hashable

from .registry import ProcessRecord, Registry

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

#: The first byte of a compressed sync payload (a JSON payload starts with "{").
ZLIB_MARK = b"Z"


def pack(msg: dict[str, Any]) -> bytes:
    """A sync message as a compressed payload."""
    return ZLIB_MARK + zlib.compress(_dumps(msg).encode("utf-8"), 1)


def unpack(payload: bytes, limit: int) -> bytes:
    """The JSON of a payload (inflated when compressed, to at most
    ``limit`` bytes: a small frame may not inflate without bound)."""
    if payload[:1] != ZLIB_MARK:
        return payload
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(payload[1:], limit + 1)
    except zlib.error as err:
        from ..errors import ProtocolError

        raise ProtocolError(f"bad compressed sync: {err}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        from ..auth import AuthError

        raise AuthError("oversized", f"sync inflates beyond the maximum of {limit} bytes")
    return data


def _entry(rec: ProcessRecord, now: float) -> dict[str, Any]:
    return {
        "host": rec.host, "pid": rec.pid, "started": rec.started, "uid": rec.uid,
        "program": rec.program, "age": round(max(0.0, now - rec.last), 3), "dropped": rec.dropped,
        "internal_errors": rec.internal_errors,
        "pools": [pool.view(now - pool.received)[0] for pool in rec.pools.values()],
    }


class _Sent:
    """What the last version said about one process."""

    __slots__ = ("program", "dropped", "internal_errors", "changes", "last")

    def __init__(self, rec: ProcessRecord) -> None:
        self.program = rec.program
        self.dropped = rec.dropped
        self.internal_errors = rec.internal_errors
        self.changes = rec.changes
        self.last = rec.last

    def same(self, rec: ProcessRecord) -> bool:
        return (
            rec.changes == self.changes
            and rec.program == self.program
            and rec.dropped == self.dropped
            and rec.internal_errors == self.internal_errors
        )


class Outbox:
    """Versions of this node's own state (full and delta ``sync`` payloads)."""

    def __init__(self, registry: Registry, node: str, host: str) -> None:
        self.registry = registry
        self.node = node
        self.host = host
        self.boot = time.time_ns()
        self.seq = 0
        self._sent: dict[Hashable, _Sent] = {}
        self._hosts: list[str] = []
        self._full: bytes | None = None
        self._full_at = 0.0

    def _local(self) -> dict[Hashable, ProcessRecord]:
        return self.registry.processes

    def hosts(self) -> list[str]:
        names = {rec.host for rec in self._local().values()}
        names.add(self.host)
        return sorted(names)

    def _head(self, full: bool) -> dict[str, Any]:
        return {"t": "sync", "node": self.node, "host": self.host, "boot": self.boot, "seq": self.seq, "full": full}

    def advance(self, now: float) -> bytes:
        """The next version, as the delta payload from the previous one
        (JSON bytes, no frame header)."""
        base = self.seq
        self.seq += 1
        self._full = None
        procs = []
        touch = []
        sent = self._sent
        local = self._local()
        for key, rec in local.items():
            old = sent.get(key)
            if old is None or not old.same(rec):
                procs.append(_entry(rec, now))
                sent[key] = _Sent(rec)
            elif rec.last != old.last:
                touch.append([rec.host, rec.pid, rec.started, round(max(0.0, now - rec.last), 3)])
                old.last = rec.last
        gone = [[k[0], k[1], k[2]] for k in sent if k not in local]  # type: ignore[index]
        for k in gone:
            del sent[(k[0], k[1], k[2])]
        msg = self._head(False)
        msg["base"] = base
        hosts = self.hosts()
        if hosts != self._hosts:
            msg["hosts"] = self._hosts = hosts
        if procs:
            msg["procs"] = procs
        if touch:
            msg["touch"] = touch
        if gone:
            msg["gone"] = gone
        return pack(msg)

    def full(self, now: float) -> bytes:
        """The current version in full (shared by links asking within the
        same 50 ms of one version, so its ages stay those of sending)."""
        if self._full is None or now - self._full_at > 0.05:
            self._full_at = now
            msg = self._head(True)
            msg["hosts"] = self.hosts()
            msg["procs"] = [_entry(rec, now) for rec in self._local().values()]
            self._full = pack(msg)
        return self._full
