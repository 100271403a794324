"""Per-process pools of raw driver connections, one per alias and settings.

Thread-safe; fork-safe: the registry notes its pid, and a forked child
(``os.register_at_fork``, or the pid check on every lookup, because uWSGI
can fork without running the hooks) starts with no pools and leaves every
inherited connection untouched for good (see :mod:`.forking`).

Every checkout is recorded (:class:`Checkout`) until it is returned: what
took it, in which thread, when and where. A checkout whose thread has died
without returning it is taken back when the pool runs dry.
"""
from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any, Callable

from sqlalchemy import pool as sa_pool
from sqlalchemy.pool.base import _ConnDialect

from . import forking, scopes
from .options import PoolOptions
from .resetter import Resetter

#: Where the clean state of a connection is kept (its record's info).
CLEAN_KEY = "django_connmon.clean"

_ids = itertools.count(1)
_creating = threading.local()


class Checkout:
    """One connection handed out by a pool and not yet returned."""

    __slots__ = (
        "id", "entry", "fairy", "raw", "pid", "thread", "started",
        "scope", "where", "returned",
    )

    def __init__(self, entry: "PoolEntry", fairy: Any, scope: Any, where: str | None) -> None:
        self.id = next(_ids)
        self.entry = entry
        self.fairy = fairy
        self.raw = fairy.dbapi_connection
        self.pid = entry.pid
        self.thread = threading.current_thread()
        self.started = time.monotonic()
        self.scope = scope
        self.where = where
        self.returned = False

    @property
    def age(self) -> float:
        return time.monotonic() - self.started

    @property
    def holder(self) -> str:
        scope = self.scope
        return scope.name if scope is not None else self.thread.name

    def __repr__(self) -> str:
        return (
            f"<Checkout {self.id} of {self.entry.alias!r} by {self.holder!r} "
            f"in {self.thread.name!r} for {self.age:.3f}s at {self.where}>"
        )


class _DriverDialect(_ConnDialect):
    """The pool's stand-in dialect: pings with the driver's own means."""

    def __init__(self, resetter: Resetter) -> None:
        self.resetter = resetter

    def _do_ping_w_event(self, dbapi_connection: Any) -> bool:
        try:
            return self.resetter.ping(dbapi_connection)
        except Exception:
            return False


class PoolEntry:
    """One SQLAlchemy pool for one (alias, connection settings) in one process.

    The pool's creator is Django's own connection-making code of the
    wrapper that is checking out (set per call, in that thread).
    """

    def __init__(
        self,
        alias: str,
        key: str,
        options: PoolOptions,
        resetter: Resetter,
        target: str,
        pid: int,
    ) -> None:
        self.alias = alias
        self.key = key
        self.options = options
        self.resetter = resetter
        self.target = target
        self.pid = pid
        self.retired = False
        self.open: dict[int, Checkout] = {}
        self.checkouts = 0
        self.discarded = 0
        self.reclaimed = 0
        self.pool = self._make_pool(options, resetter)
        self.collector: Any = None  # the agent's collector, once instrumented

    def _make_pool(self, o: PoolOptions, resetter: Resetter) -> sa_pool.Pool:
        common: dict[str, Any] = dict(
            creator=self._create,
            recycle=o.recycle,
            pre_ping=o.pre_ping,
            reset_on_return=None,  # the backend resets, knowing Django's state
            dialect=_DriverDialect(resetter),
            logging_name=f"django_connmon.{self.alias}",
        )
        if o.pool_class == "NullPool":
            return sa_pool.NullPool(**common)
        return sa_pool.QueuePool(
            pool_size=o.pool_size,
            max_overflow=o.max_overflow,
            timeout=o.timeout,
            use_lifo=o.use_lifo,
            **common,
        )

    @staticmethod
    def _create() -> Any:
        factory = getattr(_creating, "factory", None)
        if factory is None:
            raise RuntimeError("django_connmon pools connect only inside a checkout")
        return factory()

    def checkout(self, factory: Callable[[], Any], where: str | None = None) -> Checkout:
        """A connection from the pool; ``factory`` opens one if needed."""
        if self.open and isinstance(self.pool, sa_pool.QueuePool) and self.pool.checkedin() == 0:
            self.reclaim_dead()
        _creating.factory = factory
        try:
            fairy = self.pool.connect()
        finally:
            _creating.factory = None
        co = Checkout(self, fairy, scopes.current(), where)
        self.open[co.id] = co
        self.checkouts += 1
        if co.scope is not None:
            co.scope.note_checkout(co)
        return co

    def is_fresh(self, co: Checkout) -> bool:
        """True until the clean state of ``co``'s connection is recorded."""
        return CLEAN_KEY not in co.fairy.info

    def record_clean(self, co: Checkout) -> None:
        co.fairy.info[CLEAN_KEY] = self.resetter.snapshot(co.raw)

    def release(self, co: Checkout, discard: bool = False) -> bool:
        """Return ``co`` to the pool clean, or discard its connection.

        Returns True if the connection went back to the pool. Never raises:
        a connection that cannot be cleaned is closed instead.
        """
        if co.returned:
            return False
        co.returned = True
        self.open.pop(co.id, None)
        if co.scope is not None:
            co.scope.note_return(co)
        if co.pid != os.getpid():  # inherited across fork: never touch
            return False
        fairy = co.fairy
        clean = fairy.info.get(CLEAN_KEY)
        if not discard and not self.retired and clean is not None:
            try:
                self.resetter.reset(co.raw, clean)
            except Exception:
                discard = True
            else:
                try:
                    fairy.close()
                    return True
                except Exception:
                    return False
        self.discarded += 1
        try:
            fairy.invalidate()
        except Exception:
            pass
        return False

    def reclaim_dead(self) -> int:
        """Take back checkouts whose thread has ended without returning them."""
        dead = [co for co in list(self.open.values()) if not co.thread.is_alive()]
        for co in dead:
            self.reclaimed += 1
            self.release(co)
        return len(dead)

    def dispose(self) -> None:
        """Close idle connections; checked-out ones close on return."""
        self.retired = True
        try:
            self.pool.dispose()
        except Exception:
            pass

    def inherited_fds(self) -> list[int]:
        """Socket descriptors of every connection (for a forked child)."""
        raws = [co.raw for co in self.open.values()]
        queue = getattr(getattr(self.pool, "_pool", None), "queue", ())
        for rec in list(queue):
            raws.append(getattr(rec, "dbapi_connection", None))
        fds = []
        for raw in raws:
            if raw is not None:
                fd = self.resetter.socket_fd(raw)
                if fd is not None:
                    fds.append(fd)
        return fds

    def status(self) -> dict[str, Any]:
        """Counts for tests and the example project's status view."""
        p = self.pool
        queue = isinstance(p, sa_pool.QueuePool)
        return {
            "alias": self.alias,
            "pid": self.pid,
            "target": self.target,
            "checked_out": len(self.open),
            "checked_in": p.checkedin() if queue else 0,
            "connections": (p.checkedin() + p.checkedout()) if queue else len(self.open),
            "checkouts": self.checkouts,
            "discarded": self.discarded,
            "reclaimed": self.reclaimed,
        }


class PoolRegistry:
    """All pools of this process, keyed by (alias, settings fingerprint).

    ``getpid`` is injectable so a test can simulate a fork without forking.
    """

    def __init__(self, getpid: Callable[[], int] = os.getpid) -> None:
        self._getpid = getpid
        self._pid = getpid()
        self._lock = threading.Lock()
        self._entries: dict[str, PoolEntry] = {}
        self.forks_seen = 0
        #: Inherited sockets silenced at the last fork (what a child left alone).
        self.silenced = 0

    @property
    def pid(self) -> int:
        return self._pid

    def check_fork(self) -> None:
        """Start afresh if this process is not the one that made the pools."""
        if self._getpid() != self._pid:
            self.after_fork_in_child()

    def after_fork_in_child(self) -> None:
        pid = self._getpid()
        if pid == self._pid:
            return
        # The lock may have been held by a thread that does not exist here.
        self._lock = threading.Lock()
        inherited, self._entries = self._entries, {}
        self._pid = pid
        self.forks_seen += 1
        if inherited:
            fds: list[int] = []
            for entry in inherited.values():
                try:
                    fds.extend(entry.inherited_fds())
                except Exception:
                    pass
            self.silenced = forking.silence_sockets(fds)
            forking.keep_forever(inherited)

    def entry(self, key: str, make: Callable[[int], PoolEntry]) -> PoolEntry:
        """The pool entry for ``key``, made by ``make(pid)`` the first time."""
        self.check_fork()
        entry = self._entries.get(key)
        if entry is None:
            with self._lock:
                entry = self._entries.get(key)
                if entry is None:
                    entry = make(self._pid)
                    self._entries[key] = entry
        return entry

    def entries(self, alias: str | None = None) -> list[PoolEntry]:
        self.check_fork()
        return [e for e in list(self._entries.values()) if alias is None or e.alias == alias]

    def close(self, alias: str | None = None) -> int:
        """Empty the pools (of ``alias``, or all); returns how many.

        Idle connections are closed now; connections checked out at the
        time are closed when they are returned. The next checkout makes a
        new pool.
        """
        self.check_fork()
        with self._lock:
            gone = [k for k, e in self._entries.items() if alias is None or e.alias == alias]
            entries = [self._entries.pop(k) for k in gone]
        for entry in entries:
            entry.dispose()
            if entry.collector is not None:
                from . import reporting

                reporting.forget(entry)
        return len(entries)


registry = PoolRegistry()

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: registry.after_fork_in_child())
