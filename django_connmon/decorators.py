"""``auto_close_db``: give back the connections a block used.

Threads, executors, Celery tasks and management-command loops hold a
Django connection per thread until something closes it; with a pool that
starves every other thread. ``auto_close_db`` closes this thread's
connections (with the pooled backends: returns them to the pool) when the
block ends, on exceptions too::

    @auto_close_db
    def work(): ...

    @auto_close_db(using="default")
    async def awork(): ...

    with auto_close_db():
        ...

A connection inside an atomic block that began outside the block is left
alone: the outer block owns it. Async code reaches the ORM through
``sync_to_async``, so the async forms close the connections of the thread
those calls ran in (the same thread-sensitive executor).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def close_thread_connections(using: Iterable[str] | None = None) -> int:
    """Close this thread's open connections (all aliases, or ``using``);
    returns how many were closed. Connections inside an atomic block are
    left open."""
    from django.db import connections

    closed = 0
    aliases = list(using) if using is not None else list(connections)
    for alias in aliases:
        conn = connections[alias]
        if conn.connection is None or conn.in_atomic_block:
            continue
        conn.close()
        closed += 1
    return closed


class AutoCloseDB:
    """Decorator (sync or async, chosen once) and context manager."""

    def __init__(self, using: str | Iterable[str] | None = None) -> None:
        self.using = [using] if isinstance(using, str) else (list(using) if using is not None else None)

    def close(self) -> int:
        return close_thread_connections(self.using)

    async def aclose(self) -> int:
        from asgiref.sync import sync_to_async

        return await sync_to_async(close_thread_connections)(self.using)

    def __enter__(self) -> "AutoCloseDB":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "AutoCloseDB":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                finally:
                    await self.aclose()

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            finally:
                self.close()

        return wrapper  # type: ignore[return-value]


def auto_close_db(func: Any = None, *, using: str | Iterable[str] | None = None) -> Any:
    """``@auto_close_db``, ``@auto_close_db(using=...)`` or ``with auto_close_db():``."""
    if callable(func):
        return AutoCloseDB(using)(func)
    if func is not None:
        using = func  # auto_close_db("default")
    return AutoCloseDB(using)
