"""Roll-ups of pool state: per process, per (host, program), per host, per
database target, and the totals — the ``ROLLUP`` objects of the status JSON.

Computed when the state is asked for, never per report, so ingest cost does
not depend on how many processes are tracked. Nothing here touches sockets.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

from .. import protocol

GAUGES = protocol.GAUGES
pool_capacity = protocol.pool_capacity
COUNTERS = protocol.COUNTERS
_NG = len(GAUGES)
_NC = len(COUNTERS)


class Rollup:
    """Sums of gauges and counters over a set of pools and processes."""

    __slots__ = ("processes", "pools", "capacity", "unbounded", "gauges", "counters", "longest", "last_process")

    def __init__(self) -> None:
        self.processes = 0
        self.pools = 0
        self.capacity = 0
        self.unbounded = False
        self.gauges = [0] * _NG
        self.counters = [0] * _NC
        self.longest = 0.0
        # Counts distinct processes in roll-ups fed pool by pool (databases).
        self.last_process: object = None

    def add_pool(self, gauges: Sequence[int], counters: Sequence[int], capacity: int | None, longest: float) -> None:
        self.pools += 1
        if capacity is None:
            self.unbounded = True
        else:
            self.capacity += capacity
        mine = self.gauges
        for i in range(_NG):
            mine[i] += gauges[i]
        mine = self.counters
        for i in range(_NC):
            mine[i] += counters[i]
        if longest > self.longest:
            self.longest = longest

    def merge(self, other: "Rollup") -> None:
        self.processes += other.processes
        self.pools += other.pools
        self.capacity += other.capacity
        self.unbounded = self.unbounded or other.unbounded
        mine = self.gauges
        theirs = other.gauges
        for i in range(_NG):
            mine[i] += theirs[i]
        mine = self.counters
        theirs = other.counters
        for i in range(_NC):
            mine[i] += theirs[i]
        if other.longest > self.longest:
            self.longest = other.longest

    def as_dict(self) -> dict[str, Any]:
        return {
            "processes": self.processes,
            "pools": self.pools,
            "capacity": None if self.unbounded else self.capacity,
            "gauges": dict(zip(GAUGES, self.gauges)),
            "counters": dict(zip(COUNTERS, self.counters)),
            "longest_checkout": round(self.longest, 3),
        }


def sorted_rows(rows: Iterable[tuple[Any, Any]]) -> list[Any]:
    """The dicts of ``(sort key, dict)`` pairs, ordered by key."""
    return [row for _, row in sorted(rows, key=lambda kv: kv[0])]
