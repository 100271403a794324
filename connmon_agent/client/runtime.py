"""Process identity and time for the client: the two things a fork changes
and a test replaces.

Every per-process resource of the client (collector state, the reporter
thread, its socket) stores the pid it was made in and is rebuilt when
:func:`getpid` differs, so a fork is noticed even when the fork hooks did
not run (uWSGI forks from C without running them). Tests simulate a fork
without forking by replacing ``runtime.getpid`` (as prometheus_client
does with its pid provider), and mock time by replacing ``runtime.clock``.

Constraints: imported inside the user's application; standard library
only; nothing here raises.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

#: The pid provider. Replace it (``runtime.getpid = lambda: 4242``) to
#: simulate a fork in tests.
getpid: Callable[[], int] = os.getpid

#: The pid as last checked (by the fork hook, or by a real check that
#: found a fork). Cheap to compare; hooks that use it make the real check
#: whenever their lock is contended.
pid: int = os.getpid()

#: The clock of ages, hold times and intervals (seconds, monotonic).
clock: Callable[[], float] = time.monotonic

_child_hooks: list[Callable[[], None]] = []
_hooks_lock = threading.Lock()
_registered = False


def on_fork_child(callback: Callable[[], None]) -> None:
    """Run ``callback`` in every forked child, right after the fork.

    Hooks run in registration order; a hook that raises is skipped (the
    pid checks rebuild its state later anyway). The hook is registered with
    ``os.register_at_fork`` once per process, on first use.
    """
    global _registered
    with _hooks_lock:
        if callback not in _child_hooks:
            _child_hooks.append(callback)
        if not _registered and hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_run_child_hooks)
            _registered = True


def _run_child_hooks() -> None:
    global _hooks_lock, pid
    pid = getpid()
    # A thread of the parent may have held the lock at the moment of the
    # fork; in the child nobody will ever release it.
    _hooks_lock = threading.Lock()
    for hook in list(_child_hooks):
        try:
            hook()
        except Exception:  # never raise into the forking application
            from . import guard

            guard.count_error("fork hook")
