"""The console's feed: a background thread that subscribes to the agent
and hands the newest state to the UI loop.

The thread never touches urwid: it keeps the newest state and the link's
status under a lock and calls ``notify()`` (the app writes one byte to a
pipe the urwid loop watches), so the UI never blocks on the socket. When
the agent goes away it says so and reconnects with backoff, and it
re-subscribes when the refresh interval changes.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import AgentUnavailable, ConnmonError
from ..query import subscribe

log = logging.getLogger("connmon.console")

MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0


@dataclass(frozen=True)
class LinkStatus:
    """What the feed knows about the agent, for the header."""

    connected: bool = False
    ever_connected: bool = False
    error: str = ""
    since: float = field(default_factory=time.monotonic)   # of the last change
    attempts: int = 0
    last_state_at: float | None = None                      # monotonic


class StateFeed:
    """Subscribe to ``socket_path`` (a Unix socket path or an Endpoint) in a
    daemon thread. Thread-safe:
    ``take``, ``set_interval`` and ``stop`` may be called from any thread."""

    def __init__(self, socket_path: Any, interval: float, notify: Callable[[], None],
                 subscribe_fn: Callable[..., Any] = subscribe, timeout: float = 3.0,
                 backoff: tuple[float, float] = (0.2, 2.0)) -> None:
        self.socket_path = socket_path
        self.notify = notify
        self._subscribe = subscribe_fn
        self._timeout = timeout
        self._backoff = backoff
        self._lock = threading.Lock()
        self._interval = clamp_interval(interval)
        self._state: dict[str, Any] | None = None
        self._status = LinkStatus()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._sub: Any = None
        self._thread = threading.Thread(target=self._run, name="connmon-console-feed", daemon=True)

    @property
    def interval(self) -> float:
        return self._interval

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            sub = self._sub
        if sub is not None:
            try:
                sub.close()
            except Exception:   # closing twice from two threads is harmless
                pass
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def set_interval(self, interval: float) -> float:
        """Ask for updates every ``interval`` seconds (clamped); takes effect
        at the next state."""
        with self._lock:
            self._interval = clamp_interval(interval)
            return self._interval

    def take(self) -> tuple[dict[str, Any] | None, LinkStatus]:
        """The newest state not taken yet (or None) and the link status."""
        with self._lock:
            state, self._state = self._state, None
            return state, self._status

    def status(self) -> LinkStatus:
        with self._lock:
            return self._status

    def _set_status(self, **changes: Any) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)
        self._notify()

    def _notify(self) -> None:
        try:
            self.notify()
        except OSError:
            # The UI is gone (its pipe is closed): nothing left to feed.
            self._stop.set()

    def _run(self) -> None:
        delay = self._backoff[0]
        attempts = 0
        while not self._stop.is_set():
            interval = self._interval
            try:
                sub = self._subscribe(self.socket_path, interval, self._timeout)
            except ConnmonError as err:
                attempts += 1
                log.info("cannot subscribe to %s: %s", self.socket_path, err)
                self._set_status(connected=False, error=_reason(err), since=time.monotonic(),
                                 attempts=attempts)
                self._wake.wait(delay)
                self._wake.clear()
                delay = min(delay * 2, self._backoff[1])
                continue
            with self._lock:
                self._sub = sub
            log.info("subscribed to %s every %.2fs", self.socket_path, interval)
            delay = self._backoff[0]
            attempts = 0
            self._set_status(connected=True, ever_connected=True, error="", since=time.monotonic(),
                             attempts=0)
            try:
                self._pump(sub, interval)
            except ConnmonError as err:
                if not self._stop.is_set():
                    log.info("lost the agent at %s: %s", self.socket_path, err)
                    self._set_status(connected=False, error=_reason(err), since=time.monotonic(),
                                     attempts=1)
                    # The agent may come straight back (a restart): retry soon.
                    self._wake.wait(self._backoff[0])
                    self._wake.clear()
            except Exception:
                log.exception("the console's feed failed; reconnecting")
                self._set_status(connected=False, error="internal error (see the log)",
                                 since=time.monotonic(), attempts=1)
                self._wake.wait(self._backoff[1])
            finally:
                with self._lock:
                    self._sub = None
                sub.close()

    def _pump(self, sub: Any, interval: float) -> None:
        for state in sub:
            if self._stop.is_set():
                return
            with self._lock:
                self._state = state
                self._status = replace(self._status, last_state_at=time.monotonic())
                changed = self._interval != interval
            self._notify()
            if changed:
                return   # re-subscribe at the new interval


def _reason(err: ConnmonError) -> str:
    if isinstance(err, AgentUnavailable) and err.reason:
        return err.reason
    return str(err)


def clamp_interval(interval: float) -> float:
    return min(max(float(interval), MIN_INTERVAL), MAX_INTERVAL)
