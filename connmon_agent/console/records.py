"""The agent's state (the "Status JSON" of docs/internals.rst) as a flat
list of pool records, with checkout rates from consecutive states.

Every view of the console is an aggregation of these records, so totals,
filters and drill-downs agree whatever the view. No urwid, no sockets.

Speed matters here: with 10,000 processes a state holds 10,000 pools and
the whole refresh has 100 ms, of which reading the state's 60,000 small
dicts takes a quarter. So the state is read once, with plain subscripts
(falling back to defaults only for incomplete pools), and the groupings
every refresh needs (by program, by database) are collected in the same
pass. Each state makes new records, so a table built from an older state
stays as it was (e.g. while the display is paused); a record only takes
the rate sample of the previous record of its pool.
"""
from __future__ import annotations

from operator import itemgetter
from typing import Any

from ..protocol import pool_capacity
from .settings import Thresholds

#: The field a record is identified by in each base view.
BASE_KEYS = ("program", "host", "database", "process", "pool")

_EMPTY: dict[str, Any] = {}
_AGE = itemgetter("age")


class PoolRecord:
    """One pool of one process, as last reported (or the process alone when
    it has no pool: ``pool`` is None and every figure is 0).

    Immutable once made (the model never changes a record of an older state).
    """

    __slots__ = (
        "proc", "pool", "host", "program", "pid", "started", "proc_key", "pool_key", "prog_key",
        "name", "target", "checked_out", "idle", "connections", "waiters",
        "checkouts", "capacity", "fullest", "rate", "longest", "last_report_age",
        "stale", "sampled", "sampled_at",
    )

    def __init__(self, proc: dict[str, Any], pool: dict[str, Any] | None, stale: bool,
                 proc_key: tuple | None = None, prog_key: tuple | None = None,
                 pool_key: tuple | None = None, age: float | None = None,
                 old: PoolRecord | None = None, now: float = 0.0) -> None:
        """``old`` is this pool's record in the previous state (for the rate)."""
        self.proc = proc
        self.pool = pool
        if proc_key is None:
            proc_key = (proc.get("host") or "?", proc.get("pid") or 0, proc.get("started") or 0.0)
            prog_key = (proc_key[0], proc.get("program") or "?")
            age = float(proc.get("last_report_age") or 0.0)
        assert prog_key is not None
        self.host, self.pid, self.started = proc_key
        self.program = prog_key[1]
        self.proc_key = proc_key
        self.prog_key = prog_key
        self.last_report_age = age
        self.stale = stale
        self.rate = 0.0
        if pool is None:
            self.pool_key = proc_key + ("",)
            self.name = self.target = ""
            self.checked_out = self.idle = self.connections = 0
            self.waiters = self.checkouts = 0
            self.capacity = 0
            self.fullest = None
            self.longest = 0.0
            self.sampled, self.sampled_at = 0, now
            return
        self.pool_key = pool_key if pool_key is not None else proc_key + (pool.get("id", ""),)
        try:
            # Plain subscripts: the agent sends every field (a third of the
            # cost of .get() calls at this scale); anything missing goes slowly.
            g = pool["gauges"]
            out = self.checked_out = g["checked_out"]
            self.idle = g["checked_in"]
            self.connections = g["connections"]
            self.waiters = g["waiters"]
            c = self.checkouts = pool["counters"]["checkouts"]
            cos = pool["checkouts"]
            self.longest = max(map(_AGE, cos)) if cos else 0.0
            self.name = pool["name"]
            self.target = pool["target"]
            cfg = pool["config"]
            size, overflow = cfg["size"], cfg["max_overflow"]
            if type(size) is int and type(overflow) is int and size >= 0 and overflow >= 0 \
                    and cfg["class"] != "NullPool":
                cap = size + overflow
            else:
                cap = pool_capacity(cfg)
        except (KeyError, TypeError, ValueError):
            out, c, cap = self._read_slowly(pool)
        self.capacity = cap
        self.fullest = out / cap if cap else None
        if old is None:
            self.sampled, self.sampled_at = c, now
            return
        dt = now - old.sampled_at
        if dt > 0:
            before = old.sampled
            self.rate = (c - before) / dt if c >= before else 0.0
            self.sampled, self.sampled_at = c, now
        else:
            # The same state seen twice: keep the old sample and rate.
            self.rate = old.rate
            self.sampled, self.sampled_at = old.sampled, old.sampled_at

    def _read_slowly(self, pool: dict[str, Any]) -> tuple[int, int, int | None]:
        """The figures of a pool missing some of them (they read as 0)."""
        g = pool.get("gauges") or _EMPTY
        out = self.checked_out = g.get("checked_out", 0)
        self.idle = g.get("checked_in", 0)
        self.connections = g.get("connections", 0)
        self.waiters = g.get("waiters", 0)
        c = self.checkouts = (pool.get("counters") or _EMPTY).get("checkouts", 0)
        cos = pool.get("checkouts")
        self.longest = max([co.get("age", 0.0) for co in cos], default=0.0) if cos else 0.0
        self.name = pool.get("name", "")
        self.target = pool.get("target", "")
        return out, c, pool_capacity(pool.get("config") or _EMPTY)


class Records:
    """The records of the latest state and the rates between the last two.

    ``ingest`` never raises on a state that follows the documented schema;
    unknown keys are ignored and missing figures read as 0.
    """

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.records: list[PoolRecord] = []
        self.state: dict[str, Any] | None = None
        self.generated_at = 0.0
        self.by_pool: dict[tuple, PoolRecord] = {}
        #: Checked-out connections per process (``proc_key``) of the latest state.
        self.process_out: dict[tuple, int] = {}
        #: The records (with or without a pool) of each (host, program).
        self.by_prog: dict[tuple, list[PoolRecord]] = {}
        #: The records with a pool of each database target.
        self.by_target: dict[str, list[PoolRecord]] = {}
        #: (processes, fresh processes, distinct hosts): of every process
        #: (hosts: every host shown, ``empty_hosts`` included), and of the
        #: processes that have a pool.
        self.census: tuple[int, int, int] = (0, 0, 0)
        self.pooled_census: tuple[int, int, int] = (0, 0, 0)
        #: The state's ``hosts`` list: host -> (last-heard age or None,
        #: stale), without the hosts silent past ``drop_after``; a host is
        #: stale when the agent says so or it was heard too long ago.
        self.hosts: dict[str, tuple[float | None, bool]] = {}
        #: The hosts of ``hosts`` with no process shown (a cluster node
        #: shows every host of the cluster, idle ones too), in state order.
        self.empty_hosts: list[str] = []

    def ingest(self, state: dict[str, Any]) -> list[PoolRecord]:
        th = self.thresholds
        now = float(state.get("generated_at") or 0.0)
        host_info, stale_hosts = self._hosts(state.get("hosts"))
        prev = self.by_pool
        records: list[PoolRecord] = []
        by_pool: dict[tuple, PoolRecord] = {}
        process_out: dict[tuple, int] = {}
        by_prog: dict[tuple, list[PoolRecord]] = {}
        by_target: dict[str, list[PoolRecord]] = {}
        prog_get = by_prog.get
        target_get = by_target.get
        stale_after = th.stale_after
        drop_after = th.drop_after
        append = records.append
        Record = PoolRecord
        n_procs = n_fresh = n_pooled = n_pooled_fresh = 0
        hosts: set[str] = set()
        pooled_hosts: set[str] = set()
        for proc in state.get("processes") or ():
            try:
                age = proc["last_report_age"]
                host = proc["host"] or "?"
                proc_key = (host, proc["pid"], proc["started"])
                prog_key = (host, proc["program"] or "?")
                pools = proc["pools"]
                stale = age > stale_after or bool(proc.get("stale")) or host in stale_hosts
                if drop_after and age > drop_after:
                    continue
            except (KeyError, TypeError):
                age, proc_key, prog_key, pools = _process_slowly(proc)
                host = proc_key[0]
                if drop_after and age > drop_after:
                    continue
                stale = age > stale_after or bool(proc.get("stale")) or host in stale_hosts
            n_procs += 1
            if not stale:
                n_fresh += 1
            hosts.add(host)
            prog = prog_get(prog_key)
            if prog is None:
                prog = by_prog[prog_key] = []
            if not pools:
                rec = Record(proc, None, stale, proc_key, prog_key, None, age, None, now)
                append(rec)
                prog.append(rec)
                process_out[proc_key] = 0
                continue
            n_pooled += 1
            if not stale:
                n_pooled_fresh += 1
            pooled_hosts.add(host)
            out = 0
            for pool in pools:
                key = proc_key + (pool.get("id", ""),)
                rec = Record(proc, pool, stale, proc_key, prog_key, key, age, prev.get(key), now)
                out += rec.checked_out
                append(rec)
                prog.append(rec)
                by_pool[key] = rec
                same = target_get(rec.target)
                if same is None:
                    by_target[rec.target] = [rec]
                else:
                    same.append(rec)
            process_out[proc_key] = out
        self.records = records
        self.by_pool = by_pool
        self.process_out = process_out
        self.by_prog = by_prog
        self.by_target = by_target
        empty = [h for h in host_info if h not in hosts]
        self.hosts = host_info
        self.empty_hosts = empty
        self.census = (n_procs, n_fresh, len(hosts) + len(empty))
        self.pooled_census = (n_pooled, n_pooled_fresh, len(pooled_hosts))
        self.state = state
        self.generated_at = now
        return records

    def _hosts(self, rows: Any) -> tuple[dict[str, tuple[float | None, bool]], set[str]]:
        """(the shown hosts' (age, stale), every host the agent says is
        stale) of the state's ``hosts`` list; malformed entries are skipped."""
        th = self.thresholds
        info: dict[str, tuple[float | None, bool]] = {}
        flagged: set[str] = set()
        for h in rows or ():
            if not isinstance(h, dict):
                continue
            name = h.get("host")
            if not isinstance(name, str):
                continue
            name = name or "?"
            age = h.get("last_heard_age")
            if type(age) not in (int, float):
                age = None
            stale = bool(h.get("stale"))
            if stale:
                flagged.add(name)
            if age is not None:
                if th.drop_after and age > th.drop_after:
                    continue
                stale = stale or age > th.stale_after
            info[name] = (age, stale)
        return info, flagged


def _process_slowly(proc: dict[str, Any]) -> tuple[float, tuple, tuple, list]:
    """(age, proc_key, prog_key, pools) of a process missing some fields."""
    host = proc.get("host") or "?"
    proc_key = (host, proc.get("pid") or 0, proc.get("started") or 0.0)
    prog_key = (host, proc.get("program") or "?")
    return float(proc.get("last_report_age") or 0.0), proc_key, prog_key, proc.get("pools") or []
