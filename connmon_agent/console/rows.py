"""Rows of a table: the figures of a set of pool records summed up.

A row of one record copies its figures; a row of many sums them with
C-level passes (``sum(map(...))``), which is what keeps a refresh of
10,000 processes inside its budget. No urwid, no sockets.
"""
from __future__ import annotations

from functools import partial
from operator import attrgetter, is_not
from typing import Any, Iterable

from .records import PoolRecord

_PROC_KEY = attrgetter("proc_key")
_NOT_NONE = partial(is_not, None)
_SUMMED = ("connections", "checked_out", "idle", "waiters")
_GETTERS = {f: attrgetter(f) for f in _SUMMED + ("rate", "capacity", "fullest", "longest",
                                                   "last_report_age", "stale")}
#: Below this many records a row adds them one by one (cheaper than the
#: fixed cost of a dozen C-level passes).
_SMALL = 12


class Row:
    """One line of a table: a view row (``kind == "row"``) or a group header.

    Figures default at class level so that making one of ten thousand rows
    costs only the stores that differ from the defaults.
    """

    key: tuple = ()
    kind = "row"
    history_key: tuple = ()
    host: str | None = None
    program: str | None = None
    target: str | None = None
    name: str | None = None
    pid: int | None = None
    started: float | None = None
    processes = 0
    pools = 0
    connections = 0
    checked_out = 0
    idle = 0
    waiters = 0
    capacity: int | None = 0
    fullest: float | None = None
    rate = 0.0
    longest = 0.0
    last_report_age: float | None = None
    last_heard_age: float | None = None
    fresh = 0
    record: PoolRecord | None = None
    group: Any = None

    def __init__(self, key: tuple, kind: str = "row") -> None:
        self.key = key
        self.history_key = key
        if kind != "row":
            self.kind = kind

    def take(self, records: list[PoolRecord]) -> Row:
        """Sum ``records`` (of one or more processes) into this row; returns it."""
        if len(records) == 1:
            r = records[0]
            self.processes = 1
            self.fresh = 0 if r.stale else 1
            self.last_report_age = r.last_report_age
            if r.pool is not None:
                self.pools = 1
                self.connections = r.connections
                self.checked_out = r.checked_out
                self.idle = r.idle
                self.waiters = r.waiters
                self.rate = r.rate
                self.capacity = r.capacity
                self.fullest = r.fullest
                self.longest = r.longest
        elif len(records) < _SMALL:
            for r in records:
                self.add(r)
        else:
            self._sum(records)
        return self

    def add(self, rec: PoolRecord) -> None:
        """Add one record; records of one process must come together."""
        if rec.proc_key != self._last_proc:
            self._last_proc = rec.proc_key
            self.processes += 1
            if not rec.stale:
                self.fresh += 1
            age = rec.last_report_age
            if self.last_report_age is None or age < self.last_report_age:
                self.last_report_age = age
        if rec.pool is None:
            return
        self.pools += 1
        self.connections += rec.connections
        self.checked_out += rec.checked_out
        self.idle += rec.idle
        self.waiters += rec.waiters
        self.rate += rec.rate
        cap = rec.capacity
        if cap is None or self.capacity is None:
            self.capacity = None
        else:
            self.capacity += cap
        full = rec.fullest
        if full is not None and (self.fullest is None or full > self.fullest):
            self.fullest = full
        if rec.longest > self.longest:
            self.longest = rec.longest

    _last_proc: tuple | None = None

    def _sum(self, records: list[PoolRecord]) -> None:
        g = _GETTERS
        self.processes = len(set(map(_PROC_KEY, records)))
        self.fresh = len({r.proc_key for r in records if not r.stale})
        self.last_report_age = min(map(g["last_report_age"], records))
        pooled = [r for r in records if r.pool is not None]
        if not pooled:
            return
        self.pools = len(pooled)
        for f in _SUMMED:
            setattr(self, f, sum(map(g[f], pooled)))
        self.rate = sum(map(g["rate"], pooled))
        caps = list(map(g["capacity"], pooled))
        self.capacity = None if None in caps else sum(caps)
        self.fullest = max(filter(_NOT_NONE, map(g["fullest"], pooled)), default=None)
        self.longest = max(map(g["longest"], pooled))

    @property
    def stale(self) -> bool:
        """Every process of the row is silent (or its host is)."""
        return self.processes > 0 and self.fresh == 0

    def get(self, field: str) -> Any:
        return getattr(self, field, None)


class HostRow(Row):
    """A row of the host view: the figures of the host's records (none for
    a host without processes) plus what the agent's ``hosts`` list says of
    the host: when it was last heard from, and whether it is stale."""

    heard_stale = False

    @property
    def stale(self) -> bool:
        """The host is stale (by the agent or its age), or every process is."""
        return self.heard_stale or (self.processes > 0 and self.fresh == 0)


def _from_record(field: str) -> property:
    get = attrgetter(field)
    return property(lambda self: get(self.record), doc=f"The record's {field}.")


class RecordRow:
    """A row of exactly one record (a pool, or a process with one pool):
    its figures are the record's, read when asked, so making ten thousand
    of them costs one small object each."""

    __slots__ = ("key", "record", "history_key", "group")
    kind = "row"
    processes = 1
    name = _from_record("name")
    host = _from_record("host")
    program = _from_record("program")
    target = _from_record("target")
    pid = _from_record("pid")
    started = _from_record("started")
    connections = _from_record("connections")
    checked_out = _from_record("checked_out")
    idle = _from_record("idle")
    waiters = _from_record("waiters")
    capacity = _from_record("capacity")
    fullest = _from_record("fullest")
    rate = _from_record("rate")
    longest = _from_record("longest")
    last_report_age = _from_record("last_report_age")
    stale = _from_record("stale")

    def __init__(self, key: tuple, record: PoolRecord, history_key: tuple, group: Any = None) -> None:
        self.key = key
        self.record = record
        self.history_key = history_key
        self.group = group

    @property
    def pools(self) -> int:
        return 0 if self.record.pool is None else 1

    @property
    def fresh(self) -> int:
        return 0 if self.record.stale else 1

    def get(self, field: str) -> Any:
        return getattr(self, field, None)


class Totals(Row):
    """The header's figures for what is shown, plus the distinct hosts."""

    hosts = 0

    def __init__(self, records: Iterable[PoolRecord] = ()) -> None:
        super().__init__((), "totals")
        records = list(records)
        if records:
            self._sum(records)
            self.hosts = len(set(map(attrgetter("host"), records)))

    @classmethod
    def of_parts(cls, parts: list[Any], processes: int, fresh: int, hosts: int) -> Totals:
        """The totals of rows that split the pools between them (each pool
        in exactly one), given the distinct processes and hosts."""
        self = cls()
        self.processes, self.fresh, self.hosts = processes, fresh, hosts
        if not parts:
            return self
        for f in ("pools",) + _SUMMED + ("rate",):
            setattr(self, f, sum(getattr(p, f) for p in parts))
        caps = [p.capacity for p in parts]
        self.capacity = None if None in caps else sum(caps)
        self.fullest = max(filter(_NOT_NONE, (p.fullest for p in parts)), default=None)
        self.longest = max(p.longest for p in parts)
        self.last_report_age = min(filter(_NOT_NONE, (p.last_report_age for p in parts)), default=None)
        return self


def bucket(records: Iterable[PoolRecord], key: Any) -> dict[Any, list[PoolRecord]]:
    """``records`` by ``key(record)``, in order of first appearance."""
    out: dict[Any, list[PoolRecord]] = {}
    get = out.get
    for r in records:
        k = key(r)
        members = get(k)
        if members is None:
            out[k] = [r]
        else:
            members.append(r)
    return out
