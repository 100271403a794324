"""What one pool has done in one process: counters, the open connections,
the current checkouts and the hold-time histogram.

A :class:`PoolState` belongs to one pid. After a fork the collector
replaces it with a fresh one (never touching the old one's lock, which a
thread of the parent may have held at the moment of the fork), so a child
counts from zero.

Memory is bounded by the pool itself: one entry per open connection and
per checkout (both at most the pool's real size), detached connections
capped at :data:`MAX_DETACHED`, a fixed histogram.
"""
from __future__ import annotations

import threading
import weakref
from bisect import bisect_left
from collections import deque
from typing import Any

from .. import protocol
from . import frames

#: Upper bounds (seconds) of the hold-time buckets; one overflow bucket follows.
HOLD_BOUNDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
)
#: Detached connections tracked at most (a detached connection that is
#: never closed through the pool would otherwise be remembered forever).
MAX_DETACHED = 10_000

# Fields of a checkout entry (a tuple: cheapest to make on the hot path):
# id, start (clock), Holder or None, the threading.Thread, where or None.
CO_ID, CO_START, CO_HOLDER, CO_THREAD, CO_WHERE = range(5)


class PoolState:
    """Counters and live tables of one pool, for one pid.

    Mutated only under ``lock`` by the collector's listeners; read under it
    by :meth:`snapshot`. ``version`` changes with every mutation so the
    reporter can send only pools that changed.
    """

    __slots__ = (
        "pid", "lock", "version",
        "checkouts", "checkins", "connects", "disconnects",
        "invalidated_hard", "invalidated_soft", "timeouts",
        "commits", "rollbacks", "transactions",
        "open", "dead", "detached", "current", "hold_counts", "hold_sum",
        "wait_sum", "wait_max", "__weakref__",
    )

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.lock = threading.Lock()
        self.version = 0
        self.checkouts = self.checkins = self.connects = self.disconnects = 0
        self.invalidated_hard = self.invalidated_soft = self.timeouts = 0
        self.commits = self.rollbacks = self.transactions = 0
        #: id(record) -> weakref to the record, for every open connection
        self.open: dict[int, weakref.ref[Any]] = {}
        #: ids of records garbage-collected while open (their connection
        #: went with them); appended by weakref callbacks, which may run in
        #: any thread at any moment, so they never take the lock
        self.dead: deque[int] = deque()
        #: id(dbapi_connection) of detached connections not yet closed
        self.detached: dict[int, bool] = {}
        #: id(record) -> checkout entry (see CO_*)
        self.current: dict[int, tuple[Any, ...]] = {}
        self.hold_counts = [0] * (len(HOLD_BOUNDS) + 1)
        self.hold_sum = 0.0
        self.wait_sum = 0.0
        self.wait_max = 0.0

    # -- mutations (caller holds the lock) ---------------------------------

    def track_open(self, key: int, record: Any) -> None:
        if key in self.open:
            return
        dead = self.dead
        try:
            self.open[key] = weakref.ref(record, lambda _r, k=key: dead.append(k))
        except TypeError:  # a record type without weakrefs: track it plainly
            self.open[key] = _Strong(record)  # type: ignore[assignment]

    def forget_open(self, key: int) -> bool:
        """Drop an open connection; True if it was known (a disconnect)."""
        if self.open.pop(key, None) is None:
            return False
        self.disconnects += 1
        return True

    def add_wait(self, waited: float) -> None:
        self.wait_sum += waited
        if waited > self.wait_max:
            self.wait_max = waited

    def end_hold(self, entry: tuple[Any, ...], now: float) -> None:
        held = now - entry[CO_START]
        if held < 0:
            held = 0.0
        self.hold_counts[bisect_left(HOLD_BOUNDS, held)] += 1
        self.hold_sum += held

    def reap(self) -> None:
        """Forget connections whose record was garbage-collected."""
        dead = self.dead
        while dead:
            key = dead.popleft()
            ref = self.open.get(key)
            if ref is not None and ref() is None:
                del self.open[key]
                self.disconnects += 1
                self.current.pop(key, None)

    # -- reading -----------------------------------------------------------

    def snapshot(self, now: float, overflow: int, waiters: int) -> dict[str, Any]:
        """The ``gauges``, ``counters``, ``wait``, ``checkouts``,
        ``checkouts_total`` and ``hold`` of a pool report, ages relative to
        ``now``. Checkouts are oldest first, capped at MAX_CHECKOUTS."""
        with self.lock:
            self.reap()
            connections = len(self.open)
            checked_out = len(self.current)
            entries = list(self.current.values())
            counters = {
                "checkouts": self.checkouts,
                "checkins": self.checkins,
                "connects": self.connects,
                "disconnects": self.disconnects,
                "invalidated_hard": self.invalidated_hard,
                "invalidated_soft": self.invalidated_soft,
                "timeouts": self.timeouts,
                "commits": self.commits,
                "rollbacks": self.rollbacks,
                "transactions": self.transactions,
            }
            hold = {
                "bounds": list(HOLD_BOUNDS),
                "counts": list(self.hold_counts),
                "sum": self.hold_sum,
                "count": sum(self.hold_counts),
            }
            wait = {"sum": self.wait_sum, "max": self.wait_max}
            gauges = {
                "checked_out": checked_out,
                "checked_in": max(0, connections - checked_out),
                "connections": connections,
                "detached": len(self.detached),
                "overflow": max(0, overflow),
                "waiters": waiters,
            }
        entries.sort(key=_start)
        total = len(entries)
        return {
            "gauges": gauges,
            "counters": counters,
            "wait": wait,
            "checkouts": [checkout_view(e, now) for e in entries[: protocol.MAX_CHECKOUTS]],
            "checkouts_total": total,
            "hold": hold,
        }


def checkout_view(entry: tuple[Any, ...], now: float) -> dict[str, Any]:
    """One checkout as a report shows it (``age`` relative to ``now``)."""
    age = now - entry[CO_START]
    holder_name, kind, thread = describe_holder(entry)
    return {
        "id": entry[CO_ID],
        "age": round(age if age > 0 else 0.0, 6),
        "holder": _clip(holder_name),
        "kind": kind,
        "thread": _clip(thread),
        "where": _clip(frames.format(entry[CO_WHERE])),
    }


def describe_holder(entry: tuple[Any, ...]) -> tuple[str, str, str]:
    """``(holder name, kind, thread name)`` of a checkout entry: the
    request or task when there is one, else the thread."""
    thread = entry[CO_THREAD]
    thread_name = getattr(thread, "name", None) or "?"
    h = entry[CO_HOLDER]
    if h is None:
        return thread_name, "thread", thread_name
    return h.name, h.kind, thread_name


def _start(entry: tuple[Any, ...]) -> float:
    return entry[CO_START]  # type: ignore[no-any-return]


def _clip(text: str | None) -> str | None:
    if text is None or len(text) <= protocol.MAX_STR:
        return text
    return text[: protocol.MAX_STR - 3] + "..."


class _Strong:
    """Stands in for a weakref to an object that cannot be weakly referenced."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __call__(self) -> Any:
        return self.obj
