"""Who holds a checkout: the thread by default, or a named request or task.

A :class:`Holder` is made by :func:`holder` and made current for a block
through a :class:`contextvars.ContextVar`, so it follows the code that runs
inside the block: the same thread, asyncio tasks created inside it (they
copy the context), and anything run with ``contextvars.copy_context()``.
A plain ``threading.Thread`` does not copy the context (before Python
3.14); hand it the holder explicitly::

    with holder("GET /orders", kind="request") as h:
        t = threading.Thread(target=h.bind(work))   # work() runs under h
        t.start()
        ...
    leaked = h.open_checkouts()   # taken under h, in any of those threads,
                                  # and still checked out now

or, inside the thread, ``with h.adopt(): ...``.

How middleware uses it (the Django middleware does exactly this): wrap the
request in ``with holder(f"{method} {route}", kind="request") as h:``; when
the response is ready, ``h.open_checkouts()`` lists every connection taken
by the request's thread, or by a thread or task it started with the holder,
that is still checked out: a leak to warn about. Holders nest: a checkout
under an inner holder (a task inside a request) is shown as the inner one's
and is also among the outer one's ``open_checkouts()``.

Constraints: holders cost nothing until a checkout happens; entering and
leaving a holder never raises into the application (except ConfigError for
a bad ``kind``, which is a programming error).
"""
from __future__ import annotations

import contextvars
import functools
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from ..errors import ConfigError

KINDS = ("request", "task", "thread")

_current: contextvars.ContextVar[Holder | None] = contextvars.ContextVar("connmon_holder", default=None)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class OpenCheckout:
    """One connection that is checked out right now.

    ``age`` is seconds since the checkout; ``holder``/``kind`` name what
    holds it (the request or task, else the thread); ``thread`` is the name
    of the thread that took it; ``where`` is ``"file.py:LINE in func"`` (the
    first application frame) or None when frame capture is off.
    """

    id: int
    pool: str
    pool_id: str
    age: float
    holder: str
    kind: str
    thread: str
    where: str | None


class Holder:
    """A named request or task that connections are checked out under.

    Use it as a context manager (``with holder(...) as h``) once; inside
    the block it is the current holder. ``open_checkouts()`` works during
    and after the block.
    """

    __slots__ = ("name", "kind", "parent", "ended", "_tokens", "__weakref__")

    def __init__(self, name: str, kind: str = "request", parent: Holder | None = None) -> None:
        if kind not in KINDS:
            raise ConfigError(f"holder kind must be one of {', '.join(KINDS)}, not {kind!r}")
        self.name = name if isinstance(name, str) else str(name)
        self.kind = kind
        self.parent = parent
        #: True once its block was left: threads still carrying it (through
        #: bind/adopt) take new checkouts as their own thread's again.
        self.ended = False
        self._tokens: list[contextvars.Token[Holder | None]] = []

    def __repr__(self) -> str:
        return f"<Holder {self.kind} {self.name!r}>"

    def __enter__(self) -> Holder:
        self.ended = False
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self._tokens.pop() if self._tokens else None, self.parent)
        if not self._tokens:
            self.ended = True

    def within(self, other: Holder) -> bool:
        """True when this holder is ``other`` or nested (at any depth) in it."""
        h: Holder | None = self
        while h is not None:
            if h is other:
                return True
            h = h.parent
        return False

    def open_checkouts(self) -> list[OpenCheckout]:
        """Checkouts taken under this holder (or one nested in it), in any
        thread that used it, that are still checked out; oldest first.
        Never raises (returns [] if connmon itself fails)."""
        from .pools import open_checkouts

        return open_checkouts(self)

    def bind(self, fn: F) -> F:
        """``fn`` wrapped to run with this holder current (for threads and
        executors that do not copy the context)."""

        @functools.wraps(fn)
        def run_under_holder(*args: Any, **kwargs: Any) -> Any:
            token = _current.set(self)
            try:
                return fn(*args, **kwargs)
            finally:
                _restore(token, None)

        return run_under_holder  # type: ignore[return-value]

    def adopt(self) -> _Adoption:
        """A context manager making this holder current in another thread."""
        return _Adoption(self)


class _Adoption:
    __slots__ = ("holder", "token")

    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        self.token: contextvars.Token[Holder | None] | None = None

    def __enter__(self) -> Holder:
        self.token = _current.set(self.holder)
        return self.holder

    def __exit__(self, *exc: object) -> None:
        _restore(self.token, None)


def _restore(token: contextvars.Token[Holder | None] | None, fallback: Holder | None) -> None:
    try:
        if token is not None:
            _current.reset(token)
            return
    except (ValueError, RuntimeError):
        # entered in one context, left in another (a generator or task
        # switched around the block): do not raise into the application
        pass
    _current.set(fallback)


def holder(name: str, kind: str = "request") -> Holder:
    """A holder named ``name`` (a request such as ``"GET /orders/<id>"``,
    or a task name) to use as ``with holder(name) as h:``.

    ``kind`` is ``"request"``, ``"task"`` or ``"thread"``. Holders nest: the
    new holder's parent is the current one.
    """
    return Holder(name, kind, _current.get())


def current_holder() -> Holder | None:
    """The live holder of the running code, or None (checkouts are then
    attributed to the thread). A holder whose block has ended (a request
    that finished while a thread it started runs on) is not live."""
    h = _current.get()
    return None if h is not None and h.ended else h
