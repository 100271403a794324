"""The client's promise to its host application: it never raises into it.

Every entry point of client code that the application's threads run (pool
and engine event listeners, the ``_do_get`` wrapper, the reporter loop)
catches ``Exception`` and calls :func:`failed`, which counts the failure in
:data:`internal_errors` (reported to the agent with every report) and logs
it through ``logging.getLogger("connmon")`` at most once a minute. Nothing
is ever printed.

Constraints: :func:`failed` itself never raises; it is thread-safe enough
for a counter that is only ever read for display.
"""
from __future__ import annotations

import logging

from . import runtime

log = logging.getLogger("connmon")
# A library's logger: records reach the application's handlers when it has
# configured logging, and are never printed by logging's last-resort handler.
log.addHandler(logging.NullHandler())

#: Failures of client code since the process started (this process only:
#: reset in a forked child).
internal_errors = 0

#: Minimum seconds between two log records about internal errors.
LOG_EVERY = 60.0

_last_logged: float | None = None


def failed(site: str, err: BaseException | None = None) -> None:
    """Count a failure of client code at ``site`` and maybe log it."""
    global _last_logged
    try:
        count_error(site)
        now = runtime.clock()
        if _last_logged is not None and now - _last_logged < LOG_EVERY:
            return
        _last_logged = now
        log.warning(
            "connmon: internal error in %s (%d so far; the application is not affected)",
            site,
            internal_errors,
            exc_info=err if err is not None else False,
        )
    except Exception:  # logging misconfigured: stay silent
        pass


def count_error(site: str) -> None:
    """Count a failure without logging it."""
    global internal_errors
    internal_errors += 1


def log_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` at warning level at most once a minute per ``key``."""
    try:
        now = runtime.clock()
        last = _once.get(key)
        if last is not None and now - last < LOG_EVERY:
            return
        if len(_once) > 64:
            _once.clear()
        _once[key] = now
        log.warning(message, *args)
    except Exception:
        pass


_once: dict[str, float] = {}


def reset_after_fork() -> None:
    """A forked child starts counting its own failures from zero."""
    global internal_errors, _last_logged
    internal_errors = 0
    _last_logged = None
    _once.clear()


runtime.on_fork_child(reset_after_fork)
