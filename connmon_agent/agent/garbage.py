"""The agent's cyclic garbage collection: by the clock, not by allocations.

CPython's collector runs after every few hundred container allocations, and
whenever enough objects have survived into the oldest generation it walks
every tracked object. An agent ingesting 10,000 reports a second allocates
containers all the time and holds a few hundred thousand of them (every
process's pools), so a full walk costs a few hundred milliseconds at 10,000
processes and the automatic collector ran one every few seconds: about 5 %
of the agent's CPU per report in ``benchmarks/bench_agent_ingest.py`` (30.0
against 28.5 µs a report), and slower status snapshots.

Nothing on the report path makes reference cycles (a report is a JSON tree,
freed by reference counting the moment it is replaced), so the agent turns
automatic collection off and collects everything once every ``INTERVAL``
seconds, which bounds the garbage of the few cycles asyncio and exceptions
make. The price is one pause of that length a minute. Event loop only.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time

log = logging.getLogger("connmon.agent")

#: Seconds between full collections.
INTERVAL = 60.0


class GarbageClock:
    """Full collections every ``interval`` seconds instead of automatic ones."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = INTERVAL) -> None:
        self.loop = loop
        self.interval = interval
        self.collections = 0
        self._timer: asyncio.TimerHandle | None = None
        self._was_enabled = False

    def start(self) -> None:
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = self.loop.call_later(self.interval, self._collect)

    def _collect(self) -> None:
        t0 = time.monotonic()
        found = gc.collect()
        self.collections += 1
        log.debug("garbage collection: %d objects in %.0f ms", found, 1000 * (time.monotonic() - t0))
        self._timer = self.loop.call_later(self.interval, self._collect)

    def close(self) -> None:
        """Stop the clock and give the process its automatic collector back."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._was_enabled:
            gc.enable()
