"""History: bounded per-row ring buffers of checked-out connections.

Time is cut into slots of ``window / slots`` seconds of the agent's clock
(``generated_at``); each slot keeps the largest value seen in it, so a
short burst is not averaged away, and the number of slots per row is fixed
whatever the refresh interval. Rows not seen for a whole window are
forgotten, so memory follows the rows that exist. No urwid, no sockets.
"""
from __future__ import annotations

from collections import deque
from typing import Hashable, Iterable, Mapping


class History:
    """Ring buffers keyed by any hashable row key. Not thread-safe: the
    console's loop owns it."""

    def __init__(self, window: float = 300.0, slots: int = 60) -> None:
        if window <= 0 or slots < 1:
            raise ValueError("history window and slots must be positive")
        self.window = float(window)
        self.slots = int(slots)
        self.step = self.window / self.slots
        # namespace -> key -> [last slot, deque of values]
        self._series: dict[str, dict[Hashable, list]] = {}
        self._slot: int | None = None

    def __len__(self) -> int:
        return sum(len(s) for s in self._series.values())

    def record(self, now: float,
               namespaces: Mapping[str, Mapping[Hashable, float] | Iterable[tuple[Hashable, float]]]) -> None:
        """Fold one sample per key, taken at ``now`` (epoch seconds).

        Keys live in namespaces (one per kind of row) so that callers need
        not build a tuple per key per update; a series is named
        ``(namespace, key)``. A namespace's samples are a mapping, or
        (key, value) pairs (no dict to build for ten thousand pools).
        """
        slot = int(now // self.step)
        if self._slot is not None and slot < self._slot:
            # The clock went back (a different agent answered): start over
            # rather than draw nonsense.
            self._series.clear()
        new_slot = slot != self._slot
        self._slot = slot
        slots = self.slots
        for ns, values in namespaces.items():
            series = self._series.get(ns)
            if series is None:
                series = self._series[ns] = {}
            for key, v in (values.items() if isinstance(values, Mapping) else values):
                s = series.get(key)
                if s is None:
                    series[key] = [slot, deque((v,), maxlen=slots)]
                    continue
                ring = s[1]
                if s[0] == slot:
                    if v > ring[-1]:
                        ring[-1] = v
                else:
                    gap = slot - s[0] - 1
                    if gap > 0:
                        ring.extend((None,) * min(gap, slots))
                    ring.append(v)
                    s[0] = slot
        if new_slot:
            self._forget(slot - slots)

    def _forget(self, before: int) -> None:
        for series in self._series.values():
            stale = [k for k, s in series.items() if s[0] < before]
            for k in stale:
                del series[k]

    def values(self, name: tuple[str, Hashable]) -> list[float | None]:
        """The series ``(namespace, key)``, oldest first, ending at the
        current slot (``None``: no sample in that slot)."""
        series = self._series.get(name[0])
        s = series.get(name[1]) if series is not None else None
        if s is None or self._slot is None:
            return []
        out = list(s[1])
        behind = self._slot - s[0]
        if behind > 0:
            out.extend((None,) * min(behind, self.slots))
            out = out[-self.slots:]
        return out
