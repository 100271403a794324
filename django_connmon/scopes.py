"""Who a checkout is for: a request or a task (a *scope*), else its thread.

A scope is entered by the middleware (per request) or the Celery hooks (per
task) and lives in a ``contextvars.ContextVar``, so it follows async code.
Threads started while a scope is active inherit it once
:func:`inherit_in_threads` has been called (the middleware does): Python
3.11 starts threads with an empty context, so ``Thread.start`` is wrapped to
carry over this scope and the connmon client's holder, nothing else. A scope stops being handed
down when it ends, so a pool thread started by one request is not blamed
for the next.

Cheap and never raising: a scope is a few counters and a set of ids.
"""
from __future__ import annotations

import contextvars
import sys
import threading
import time
from typing import Any

_current: contextvars.ContextVar["Scope | None"] = contextvars.ContextVar(
    "django_connmon_scope", default=None
)


class Scope:
    """One request or task: its checkouts, their hold time, its leaks."""

    __slots__ = (
        "name", "kind", "started", "ended", "checkouts", "hold_time",
        "_open", "_lock", "__weakref__",
    )

    def __init__(self, name: str, kind: str = "request") -> None:
        self.name = name
        self.kind = kind
        self.started = time.monotonic()
        self.ended: float | None = None
        self.checkouts = 0
        self.hold_time = 0.0
        self._open: dict[int, Any] = {}
        self._lock = threading.Lock()

    def note_checkout(self, co: Any) -> None:
        with self._lock:
            self.checkouts += 1
            self._open[co.id] = co

    def note_return(self, co: Any) -> None:
        with self._lock:
            if self._open.pop(co.id, None) is not None:
                self.hold_time += co.age

    def open_checkouts(self) -> list[Any]:
        """Checkouts taken under this scope (any thread) not yet returned."""
        with self._lock:
            return [co for co in self._open.values() if not co.returned]

    @property
    def active(self) -> bool:
        return self.ended is None

    def end(self) -> None:
        self.ended = time.monotonic()

    def __repr__(self) -> str:
        return f"<Scope {self.kind} {self.name!r} checkouts={self.checkouts} hold={self.hold_time:.4f}s>"


def current() -> Scope | None:
    """The active scope of this context, or of the request that started
    this thread while it is still running."""
    scope = _current.get()
    if scope is not None and scope.ended is None:
        return scope
    scope = getattr(threading.current_thread(), "_connmon_scope", None)
    if scope is not None and scope.ended is None:
        return scope
    return None


def enter(scope: Scope) -> contextvars.Token:
    return _current.set(scope)


def leave(token: contextvars.Token) -> None:
    try:
        _current.reset(token)
    except ValueError:  # a different context (async teardown): just clear
        _current.set(None)


_installed = False
_install_lock = threading.Lock()


def inherit_in_threads() -> None:
    """Make threads started inside a scope inherit it (idempotent)."""
    global _installed
    if _installed:
        return
    with _install_lock:
        if _installed:
            return
        original_start = threading.Thread.start

        from .reporting import client_api

        api = client_api()
        current_holder = getattr(api, "current_holder", None)

        def start(self: threading.Thread, *args: Any, **kwargs: Any) -> Any:
            try:
                scope = _current.get()
                if scope is not None and scope.ended is None:
                    self._connmon_scope = scope  # type: ignore[attr-defined]
                    h = current_holder() if current_holder is not None else None
                    if h is not None:
                        self.run = _run_under(h, self.run)  # type: ignore[method-assign]
            except Exception:
                pass
            return original_start(self, *args, **kwargs)

        start.__wrapped__ = original_start  # type: ignore[attr-defined]
        threading.Thread.start = start  # type: ignore[method-assign]
        _installed = True


def _run_under(h: Any, run: Any) -> Any:
    def run_under_holder() -> None:
        with h.adopt():
            run()

    return run_under_holder


# -- where a checkout was taken ---------------------------------------------

_SKIP = (
    "/django/db/",
    "/django/utils/",
    "/django_connmon/",
    "/sqlalchemy/",
    "/connmon_agent/",
    "/asgiref/",
)
_BASE_STDLIB = sys.base_prefix + "/lib/python"

#: code object -> whether its frames are skipped (library code). Bounded by
#: the number of functions in the program; saves the string tests on every
#: frame of every checkout.
_skipped: dict[Any, bool] = {}


def _is_library(code: Any) -> bool:
    fn = code.co_filename
    skip = (
        any(s in fn for s in _SKIP)
        or (fn.startswith(_BASE_STDLIB) and "site-packages" not in fn)
        or fn.startswith("<frozen")
    )
    if len(_skipped) >= 20000:  # code made at run time (exec): stay bounded
        _skipped.clear()
    _skipped[code] = skip
    return skip


def where(depth: int = 2) -> str | None:
    """``"path/file.py:LINE in func"`` of the first application frame."""
    try:
        f = sys._getframe(depth)
    except ValueError:
        return None
    skipped = _skipped
    while f is not None:
        code = f.f_code
        skip = skipped.get(code)
        if skip is None:
            skip = _is_library(code)
        if not skip:
            return f"{code.co_filename}:{f.f_lineno} in {code.co_name}"
        f = f.f_back
    return None
