"""The agent's live state: processes, their pools, and the snapshot the
status JSON and the ``state`` message are made of.

A report costs O(size of that report) whatever the number of processes:
it replaces (full) or patches (delta) one process's pool map. Roll-ups are
computed only when a snapshot is asked for, and a snapshot is reused for
``SNAPSHOT_TTL`` seconds so that several consoles asking in the same tick
cost one build. Single-threaded: called from the event loop only.
"""
from __future__ import annotations

import json
import time
from itertools import chain
from typing import Any, Hashable

from .. import protocol
from ..errors import ProtocolError
from .poolstate import PoolState
from .rollup import Rollup, pool_capacity, sorted_rows

SCHEMA = 1

_dumps_str = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _dumps(obj: Any) -> bytes:
    return _dumps_str(obj).encode("utf-8")

#: Seconds a built snapshot may be served again to other askers: always
#: while nothing changed, and even after changes once building it has become
#: expensive (``SNAPSHOT_SHARE_COST`` seconds), so many consoles asking a
#: busy agent in the same tick cost one build.
SNAPSHOT_TTL = 0.1
#: A host age for "not heard through this source" (remote hosts are heard
#: through their origin, not through their processes' reports).
_NEVER = float("inf")
SNAPSHOT_SHARE_COST = 0.005

_EMPTY: dict[str, Any] = {}


class ProcessRecord:
    """One reporting process, named by ``key = (host, pid, started)``."""

    __slots__ = (
        "key", "host", "pid", "started", "uid", "program", "conn", "pools",
        "last", "dropped", "internal_errors", "reports", "interval", "origin", "changes",
    )

    def __init__(self, host: str, pid: int, started: float, uid: int | None, program: str, conn: Any = None, interval: float | None = None) -> None:
        self.key: Hashable = (host, pid, started)
        self.host = host
        self.pid = pid
        self.started = started
        self.uid = uid
        self.program = program
        self.conn = conn
        #: pool id -> the pool as merged from the reports
        self.pools: dict[str, PoolState] = {}
        #: grows by one whenever ``pools`` changes (the cluster's outbox
        #: compares it with the count it last sent)
        self.changes = 0
        self.last = time.monotonic()
        self.dropped = 0
        #: failures of connmon's own code inside that process (never seen by the app)
        self.internal_errors = 0
        self.reports = 0
        self.interval = interval
        #: the remote origin (agent/remote.py) a synced process came from; None when local
        self.origin: Any = None


class Registry:
    """Processes -> pools, plus the counters of the ``stats`` object."""

    def __init__(self, stale_after: float = 10.0) -> None:
        self.processes: dict[Hashable, ProcessRecord] = {}
        self.stale_after = stale_after
        self.generation = 0
        self.reports = 0
        #: delta pool records that could not be merged (unknown pool sent
        #: partially, or histogram counts that do not fit the held bounds)
        self.ignored_pools = 0
        self._snapshot_at = 0.0
        self._snapshot_generation = -1
        self._snapshot_cost = 0.0
        self._snapshot_frame: bytes | None = None
        #: the cluster's synced state of other nodes (agent/remote.py), if any
        self.remote: Any = None
        #: hosts shown even without processes (this node's, in a cluster)
        self.local_hosts: tuple[str, ...] = ()

    # -- mutation ---------------------------------------------------------

    def touch(self) -> None:
        """Something shown in the snapshot (a counter, a client) changed."""
        self.generation += 1

    def register(self, rec: ProcessRecord) -> ProcessRecord | None:
        """Track ``rec``; returns the record it replaces (same key), if any."""
        old = self.processes.get(rec.key)
        self.processes[rec.key] = rec
        self.generation += 1
        return old

    def remove(self, key: Hashable, rec: ProcessRecord | None = None) -> ProcessRecord | None:
        """Forget a process; with ``rec``, only if that record is still current."""
        current = self.processes.get(key)
        if current is None or (rec is not None and current is not rec):
            return None
        del self.processes[key]
        self.generation += 1
        return current

    def ingest(self, rec: ProcessRecord, msg: dict[str, Any], now: float) -> None:
        """Apply one validated report to ``rec``. O(size of the report).

        A full report replaces the process's pools. A delta merges each pool
        record into the pool held (:meth:`PoolState.merge`: key by key, name
        by name, changed histogram buckets over the counts held; a checkout
        list left out keeps the time it was received, so its ages go on
        growing) and drops the pools in ``gone``. A record that cannot be
        merged is ignored and counted in ``ignored_pools``. ``rec.changes``
        counts the reports that changed the pools.
        """
        if msg["full"]:
            rec.pools = {p["id"]: PoolState.whole(p, now) for p in msg["pools"]}
            rec.changes += 1
        else:
            pools = rec.pools
            for p in msg["pools"]:
                held = pools.get(p["id"])
                if held is None:
                    hold = p.get("hold")
                    if "name" not in p or "target" not in p or (hold is not None and "counts" not in hold):
                        self.ignored_pools += 1  # a delta for a pool never sent whole
                        continue
                    pools[p["id"]] = PoolState.whole(p, now)
                elif not held.merge(p, now):
                    self.ignored_pools += 1  # changed buckets that fit no histogram held
            gone = msg.get("gone")
            if gone:
                for pool_id in gone:
                    pools.pop(pool_id, None)
            if msg["pools"] or gone:
                rec.changes += 1
            if len(pools) > protocol.MAX_POOLS:
                raise ProtocolError(f"process reports more than {protocol.MAX_POOLS} pools")
        program = msg.get("program")
        if program:
            rec.program = program
        rec.dropped = msg.get("dropped", rec.dropped)
        rec.internal_errors = msg.get("internal_errors", rec.internal_errors)
        rec.last = now
        rec.reports += 1
        self.reports += 1
        self.generation += 1

    # -- snapshots --------------------------------------------------------

    def snapshot(self, agent: dict[str, Any]) -> dict[str, Any]:
        """The status dict (schema in docs/internals.rst), built now."""
        return self.build(agent, time.monotonic(), time.time())

    def state_frame(self, agent: dict[str, Any]) -> bytes:
        """The status as one encoded ``state`` frame, shared by every asker
        within SNAPSHOT_TTL. Process rows are encoded as they are built, so a
        snapshot never holds the whole state as Python objects at once."""
        now = time.monotonic()
        if (
            self._snapshot_frame is not None
            and now - self._snapshot_at < SNAPSHOT_TTL
            and (self._snapshot_generation == self._generation() or self._snapshot_cost > SNAPSHOT_SHARE_COST)
        ):
            return self._snapshot_frame
        self._snapshot_frame = self.build(agent, now, time.time(), frame=True)
        self._snapshot_at = now
        self._snapshot_generation = self._generation()
        self._snapshot_cost = time.monotonic() - now
        return self._snapshot_frame

    def _generation(self) -> int:
        remote = self.remote
        return self.generation if remote is None else self.generation + remote.generation

    def drop_cached(self) -> int:
        """Free the cached frame (it can be tens of MB at 10,000 processes);
        returns its size."""
        frame, self._snapshot_frame = self._snapshot_frame, None
        return len(frame) if frame is not None else 0

    def build(self, agent: dict[str, Any], now: float, generated_at: float, frame: bool = False) -> Any:
        """The whole status dict at monotonic ``now``; with ``frame``, the
        encoded ``state`` frame instead."""
        stale_after = self.stale_after
        totals = Rollup()
        hosts: dict[str, tuple[Rollup, float]] = {}
        programs: dict[tuple[str, str], Rollup] = {}
        databases: dict[str, Rollup] = {}
        processes = []
        dropped = 0
        remote = self.remote
        records: Any = self.processes.values()
        if remote is not None and remote.origins:
            records = chain(records, remote.records())
        for rec in records:
            proc = Rollup()
            proc.processes = 1
            pools_out = []
            for pool in rec.pools.values():
                view, longest = pool.view(now - pool.received)
                pools_out.append(view)
                g, c = pool.gauges, pool.counters
                cap = pool_capacity(pool.config or _EMPTY)
                proc.add_pool(g, c, cap, longest)
                target = pool.target
                db = databases.get(target)
                if db is None:
                    db = databases[target] = Rollup()
                if db.last_process is not rec:
                    db.last_process = rec
                    db.processes += 1
                db.add_pool(g, c, cap, longest)
            pools_out.sort(key=lambda p: (p["name"], p["id"]))
            age = max(0.0, now - rec.last)
            origin = rec.origin
            stale = age > stale_after or (origin is not None and origin.stale)
            row = proc.as_dict()
            row.update(
                host=rec.host, pid=rec.pid, program=rec.program,
                started=rec.started, last_report_age=round(age, 3), stale=stale,
                dropped=rec.dropped, internal_errors=rec.internal_errors, uid=rec.uid,
            )
            # In a process row ``pools`` is the pool list (the schema's
            # choice); its roll-up count is ``len(row["pools"])``.
            row["pools"] = pools_out
            processes.append(((rec.host, rec.program, rec.pid), _dumps(row) if frame else row))
            dropped += rec.dropped
            totals.merge(proc)
            # A remote host is heard when its origin is (see below).
            heard = age if origin is None else _NEVER
            host = hosts.get(rec.host)
            if host is None:
                hosts[rec.host] = (proc_copy(proc), heard)
            else:
                host[0].merge(proc)
                if heard < host[1]:
                    hosts[rec.host] = (host[0], heard)
            key = (rec.host, rec.program)
            prog = programs.get(key)
            if prog is None:
                programs[key] = proc_copy(proc)
            else:
                prog.merge(proc)
        stale_hosts: set[str] = set()
        for name in self.local_hosts:
            roll, heard = hosts.get(name) or (Rollup(), _NEVER)
            hosts[name] = (roll, 0.0)  # this agent hears its own host now
        if remote is not None:
            fresh_hosts: set[str] = set()
            for o in remote.origins.values():
                o_age = max(0.0, now - o.heard)
                for name in o.hosts:
                    roll, heard = hosts.get(name) or (Rollup(), _NEVER)
                    hosts[name] = (roll, min(heard, o_age))
                    (stale_hosts if o.stale else fresh_hosts).add(name)
            stale_hosts -= fresh_hosts
        host_rows = []
        for name, (roll, heard) in hosts.items():
            row = roll.as_dict()
            heard = heard if heard != _NEVER else now
            row.update(host=name, last_heard_age=round(heard, 3),
                       stale=heard > stale_after or (name in stale_hosts and name not in self.local_hosts))
            host_rows.append((name, row))
        prog_rows = []
        for (host, program), roll in programs.items():
            row = roll.as_dict()
            row.update(host=host, program=program)
            prog_rows.append(((host, program), row))
        db_rows = []
        for target, roll in databases.items():
            row = roll.as_dict()
            row["target"] = target
            db_rows.append((target, row))
        agent = dict(agent)
        extra = agent.get("stats") or {}
        stats = {
            "clients": extra.get("clients", 0),
            "reports": self.reports,
            "bad_frames": extra.get("bad_frames", 0),
            "rejected": extra.get("rejected", 0),
            "dropped_by_clients": dropped,
            "processes": len(self.processes),
        }
        if remote is not None:
            stats["remote_processes"] = remote.process_count()
        for key, value in extra.items():
            stats.setdefault(key, value)
        agent["stats"] = stats
        doc = {
            "schema": SCHEMA,
            "generated_at": round(generated_at, 3),
            "agent": agent,
            "totals": totals.as_dict(),
            "hosts": sorted_rows(host_rows),
            "programs": sorted_rows(prog_rows),
            "databases": sorted_rows(db_rows),
        }
        if not frame:
            doc["processes"] = sorted_rows(processes)
            return doc
        head = _dumps({"t": "state", **doc})
        rows = sorted_rows(processes)
        del processes
        # One join into the frame, commas and header included: at 10,000
        # processes every intermediate copy would be tens of MB more to
        # allocate, and for the allocator to keep after the frame is gone.
        parts = [b"", head[:-1], b',"processes":[']
        if rows:
            commas = [b","] * (2 * len(rows) - 1)
            commas[::2] = rows
            parts += commas
        parts.append(b"]}")
        size = sum(map(len, parts))
        parts[0] = protocol.HEADER.pack(size)
        return b"".join(parts)


def proc_copy(proc: Rollup) -> Rollup:
    """A fresh roll-up holding ``proc``'s sums (so merging does not alias it)."""
    r = Rollup()
    r.merge(proc)
    return r
