"""connmon for Django: pooled backends that survive fork, ``close_pool``,
``auto_close_db``, a request-aware middleware and system checks.

Add ``"django_connmon"`` to ``INSTALLED_APPS`` for the system checks (the
backends work without it) and set ``DATABASES[alias]["ENGINE"]`` to
``django_connmon.backends.mysql``, ``.postgresql`` or ``.sqlite3``.
"""
from __future__ import annotations

from .decorators import AutoCloseDB, auto_close_db, close_thread_connections


def close_pool(alias: str | None = None) -> int:
    """Empty this process's pools (of ``alias``, or all), as in
    django-mysqlpool. Idle connections close now, checked-out ones when
    they are returned; the next checkout opens a fresh pool. Returns the
    number of pools emptied. Forked children never need it: they get empty
    pools of their own."""
    from .pools import registry

    return registry.close(alias)


def pool_status(alias: str | None = None) -> list[dict]:
    """Counts of this process's pools (checked out, idle, checkouts...)."""
    from .pools import registry

    return [e.status() for e in registry.entries(alias)]


__all__ = ["AutoCloseDB", "auto_close_db", "close_pool", "close_thread_connections", "pool_status"]
