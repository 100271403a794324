"""How the agent holds one pool: compact, and merged in place.

At 10,000 processes the agent holds 20,000 pools and merges 10,000 reports a
second into them. Held as the JSON trees the reports decode to, every gauge,
counter and histogram bucket would be a Python object of its own, and every
merge would free the ones it replaces: work and cache misses on state that
nobody touched for a second. A :class:`PoolState` keeps gauges, counters,
the histogram's count and its bucket counts in one ``array('q')`` (the
values themselves, 8 bytes each: ``protocol.GAUGES``, then ``COUNTERS``,
then the count, then the buckets; one block of memory to reach) and writes
a delta's values over them, so a report costs about what it carries
(``benchmarks/bench_agent_ingest.py`` at 10,000 processes: about 3 µs less
per report, and an RSS of 82 MB instead of 135, than the decoded dicts
merged in place).

:meth:`PoolState.view` gives the POOL object of the status JSON
(docs/internals.rst): every known gauge and counter (missing ones read as
0), names and top-level keys a newer client sent that this agent does not
know kept as they came (up to ``MAX_MORE`` of each). Values inside ``wait`` and ``hold`` are the known
ones only. Event loop only.
"""
from __future__ import annotations

from array import array
from sys import intern
from typing import Any

from .. import protocol

GAUGES = protocol.GAUGES
COUNTERS = protocol.COUNTERS
_NG = len(GAUGES)
_NC = len(COUNTERS)
#: Where things are in ``PoolState.values``.
_GAUGE_INDEX = {name: i for i, name in enumerate(GAUGES)}
_COUNTER_INDEX = {name: _NG + i for i, name in enumerate(COUNTERS)}
_HOLD_COUNT = _NG + _NC
_BUCKETS = _HOLD_COUNT + 1
_NO_VALUES = bytes(8 * _BUCKETS)
#: The top-level keys of a pool record held in slots; others are ``extra``.
_KNOWN_KEYS = frozenset(("id", "name", "target", "config", "gauges", "counters", "wait",
                         "checkouts", "checkouts_total", "hold"))
#: The keys a delta record usually has (anything else takes the slow path).
_COMMON_DELTA = frozenset(("id", "gauges", "counters", "wait", "hold", "checkouts", "checkouts_total"))
#: At most this many names a newer client adds are kept per section
#: (gauges, counters) and top-level keys per pool: deltas cannot grow a
#: pool without bound. Later new ones are dropped until the next full report.
MAX_MORE = 64


class Canon:
    """Shares equal values between stored pools, to bound memory.

    Thousands of processes report the same pool configs, histogram bounds,
    database targets and code locations; one shared object each instead of
    one per pool saves about a third of the agent's memory. Strings go
    through ``sys.intern`` (interned strings die with their last user); the
    config and bounds tables are bounded (``limit`` entries, then new values
    are kept unshared). Shared values are never mutated: a PoolState only
    ever replaces its ``config`` and ``bounds``.
    """

    __slots__ = ("limit", "_configs", "_bounds")

    def __init__(self, limit: int = 10_000) -> None:
        self.limit = limit
        self._configs: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._bounds: dict[tuple[Any, ...], list[Any]] = {}

    def config(self, config: dict[str, Any]) -> dict[str, Any]:
        return self._share(self._configs, tuple(config.items()), config)

    def bounds(self, bounds: list[Any]) -> list[Any]:
        return self._share(self._bounds, tuple(bounds), bounds)

    def _share(self, table: dict[tuple[Any, ...], Any], key: tuple[Any, ...], value: Any) -> Any:
        """The object held for ``key``, or ``value`` (held from now on while
        the table has room)."""
        shared = table.get(key)
        if shared is not None:
            return shared
        if len(table) < self.limit:
            table[key] = value
        return value

    @staticmethod
    def checkouts(checkouts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The list, its holders and code locations interned in place."""
        for co in checkouts:
            where = co.get("where")
            if where is not None:
                co["where"] = intern(where)
            holder = co.get("holder")
            if holder is not None:
                co["holder"] = intern(holder)
        return checkouts


#: One table for the whole agent (local and synced pools alike).
CANON = Canon()


def _write(values: array[int], index: dict[str, int], part: dict[str, int],
           more: dict[str, int] | None) -> dict[str, int] | None:
    """Write ``part`` over ``values`` (by ``index``); names not in ``index``
    go to ``more`` (made if None). Returns ``more``."""
    try:
        for name, value in part.items():
            values[index[name]] = value
        return more
    except KeyError:  # a name this agent does not know (a newer client's)
        pass
    if more is None:
        more = {}
    for name, value in part.items():
        i = index.get(name)
        if i is not None:
            values[i] = value
        elif name in more or len(more) < MAX_MORE:
            more[name] = value
    return more


class PoolState:
    """One pool of one process, as merged from its reports.

    Built from a complete pool record (:meth:`whole`, validated by
    ``protocol.validate_report``) and updated by delta records
    (:meth:`merge`). ``received`` is the monotonic time its checkouts were
    received: their ages are relative to it.
    """

    __slots__ = (
        "id", "name", "target", "config", "values", "more_gauges", "more_counters",
        "wait", "checkouts", "checkouts_total", "bounds", "hold_sum", "extra", "received",
    )

    def __init__(self, pool_id: str, name: str, target: str, received: float) -> None:
        self.id = pool_id
        self.name = name
        self.target = target
        self.config: dict[str, Any] | None = None
        #: gauges, counters, the histogram's count, its bucket counts
        self.values = array("q", _NO_VALUES)
        #: names a newer client sends that this agent does not know
        self.more_gauges: dict[str, int] | None = None
        self.more_counters: dict[str, int] | None = None
        #: [sum, max] of the seconds spent waiting in checkout, when sent
        self.wait: array[float] | None = None
        self.checkouts: list[dict[str, Any]] | None = None
        self.checkouts_total: int | None = None
        #: the hold-time histogram's bounds, when one was sent
        self.bounds: list[Any] | None = None
        self.hold_sum: Any = 0
        #: top-level keys a newer client sends that this agent does not know
        self.extra: dict[str, Any] | None = None
        self.received = received

    @classmethod
    def whole(cls, p: dict[str, Any], now: float, canon: Canon = CANON) -> "PoolState":
        """The state a complete pool record (``name``, ``target``, and a
        whole ``hold`` if any) describes."""
        self = cls(p["id"], p["name"], p["target"], now)
        self._rare(p, canon)
        self._apply(p, canon, now)
        return self

    def merge(self, p: dict[str, Any], now: float, canon: Canon = CANON) -> bool:
        """Merge a delta record (``protocol.validate_report``): what it
        carries replaces what is held, key by key and name by name; a
        histogram's ``changed`` buckets are written over the counts held.
        False, and nothing changed, when those buckets do not fit the
        histogram held (or there is none)."""
        hold = p.get("hold")
        if hold is not None and "counts" not in hold:
            changed = hold["changed"]
            if self.bounds is None or (changed and max(changed[::2]) >= len(self.values) - _BUCKETS):
                return False
        if not p.keys() <= _COMMON_DELTA:
            self._rare(p, canon)
        self._apply(p, canon, now)
        return True

    def _apply(self, p: dict[str, Any], canon: Canon, now: float) -> None:
        part = p.get("gauges")
        if part:
            self.more_gauges = _write(self.values, _GAUGE_INDEX, part, self.more_gauges)
        part = p.get("counters")
        if part:
            self.more_counters = _write(self.values, _COUNTER_INDEX, part, self.more_counters)
        hold = p.get("hold")
        if hold is not None:
            values = self.values
            if "counts" in hold:  # whole: on first sight, or its bounds changed
                self.bounds = canon.bounds(hold["bounds"])
                del values[_BUCKETS:]
                values.extend(hold["counts"])
                values[_HOLD_COUNT] = hold.get("count", 0)
            else:
                it = iter(hold["changed"])
                for i, count in zip(it, it):
                    values[_BUCKETS + i] = count
                if "count" in hold:
                    values[_HOLD_COUNT] = hold["count"]
            self.hold_sum = hold["sum"]
        wait = p.get("wait")
        if wait is not None:
            held = self.wait
            if held is None:
                self.wait = array("d", (wait["sum"], wait["max"]))
            else:
                held[0] = wait["sum"]
                held[1] = wait["max"]
        if "checkouts" in p:
            self.checkouts = canon.checkouts(p["checkouts"])
            self.received = now  # their ages count from now
        if "checkouts_total" in p:
            self.checkouts_total = p["checkouts_total"]

    def _rare(self, p: dict[str, Any], canon: Canon) -> None:
        """Keys a delta seldom carries: names, config, unknown keys."""
        if "name" in p:
            self.name = intern(p["name"])
        if "target" in p:
            self.target = intern(p["target"])
        if "config" in p:
            self.config = canon.config(p["config"])
        if not p.keys() <= _KNOWN_KEYS:
            extra = self.extra
            if extra is None:
                extra = self.extra = {}
            for key, value in p.items():
                if key not in _KNOWN_KEYS and (key in extra or len(extra) < MAX_MORE):
                    extra[key] = value

    @property
    def gauges(self) -> array[int]:
        """The known gauges, in ``protocol.GAUGES`` order (a copy)."""
        return self.values[:_NG]

    @property
    def counters(self) -> array[int]:
        """The known counters, in ``protocol.COUNTERS`` order (a copy)."""
        return self.values[_NG:_HOLD_COUNT]

    def view(self, shift: float) -> tuple[dict[str, Any], float]:
        """The POOL object of the status JSON, checkout ages brought forward
        by ``shift`` seconds, and its longest checkout age. A new object
        sharing nothing that :meth:`merge` updates."""
        view: dict[str, Any] = {"id": self.id, "name": self.name, "target": self.target}
        if self.config is not None:
            view["config"] = self.config
        values = self.values
        gauges = dict(zip(GAUGES, values))
        if self.more_gauges:
            gauges.update(self.more_gauges)
        view["gauges"] = gauges
        counters = dict(zip(COUNTERS, values[_NG:_HOLD_COUNT]))
        if self.more_counters:
            counters.update(self.more_counters)
        view["counters"] = counters
        if self.wait is not None:
            view["wait"] = {"sum": self.wait[0], "max": self.wait[1]}
        longest = 0.0
        checkouts = self.checkouts
        if checkouts is not None:
            moved = []
            for co in checkouts:
                age = round(co["age"] + shift, 3)
                if age > longest:
                    longest = age
                c = dict(co)
                c["age"] = age
                moved.append(c)
            view["checkouts"] = moved
        if self.checkouts_total is not None:
            view["checkouts_total"] = self.checkouts_total
        if self.bounds is not None:
            view["hold"] = {"bounds": self.bounds, "counts": values[_BUCKETS:].tolist(),
                            "sum": self.hold_sum, "count": values[_HOLD_COUNT]}
        if self.extra:
            for key, value in self.extra.items():
                view.setdefault(key, value)
        return view, longest
