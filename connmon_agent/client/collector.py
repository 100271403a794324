"""The in-process collector: SQLAlchemy pool activity in, per-pool
counters out.

A :class:`PoolCollector` watches one Engine (following ``engine.pool``
across ``dispose()``) or one bare Pool. Everything is keyed by the
connection record, never the DBAPI connection: on hard invalidation
SQLAlchemy checks the record in with ``dbapi_connection=None``.

Where each figure comes from:

* checkouts, wait time, checkout timeouts: the pool instance's
  ``_do_get`` is wrapped. Every new checkout takes a record from it, and
  every record it hands out goes back through ``_do_return_conn`` (also
  when connecting or pre-ping fails, and on detach).
* checkins and hold times: the pool instance's ``_do_return_conn`` is
  wrapped (the two are the ``Pool`` subclass hooks of SQLAlchemy 1.4 to
  2.1). A ``checkout``/``checkin`` listener pair would cost an event
  dispatch each: the collector would then be about 1.4x the bare
  ``connect(); close()`` loop instead of well under 1.25x (benchmarks/).
* connections: the ``connect`` event adds the record; ``close`` and hard
  ``invalidate`` remove it; ``detach`` moves its connection to the
  detached set, which ``close_detached`` empties; a record
  garbage-collected while open (a pool dropped after ``dispose()``) is
  removed too. Checked in = connections - checked out, never negative.
* waiters: threads waiting in a QueuePool's queue, read when reporting.
* transactions (begins), commits, rollbacks: the engine makes its
  Connections from a subclass that counts ``_begin_impl``,
  ``_commit_impl`` and ``_rollback_impl`` (also for engines made by
  ``execution_options()``). Engine-level ``begin``/``commit``/``rollback``
  events would do the same but switch every Connection of the engine onto
  SQLAlchemy's slower event path (+20 % on a connect/close loop); the
  pool's reset-on-return is not a rollback the application made.

The pool events use the current (2.0+) signatures.

Constraints: runs in the application's threads. Every hook is guarded
(never raises: failures are counted and logged at most once a minute),
holds one short lock, does no I/O and allocates O(1). Fork: every checkout
compares ``os.getpid()`` with its state's pid (so a child sees its pools
from zero even when fork hooks did not run); the other hooks compare the
pid cached by the fork hook and by that check, and make the real check
whenever their lock is contended (a lock inherited while held at the fork
cannot deadlock them).
"""
from __future__ import annotations

import itertools
import threading
import weakref
from typing import Any

from . import describe, frames, guard, runtime
from .config import ClientConfig
from .holders import Holder, OpenCheckout
from .hooks import POOL_HOOKS, Release, unwrap, wrap_engine, wrap_pool
from .state import CO_HOLDER, CO_ID, CO_START, CO_WHERE, MAX_DETACHED, PoolState, describe_holder

_pool_ids = itertools.count(1)

#: Pool events listened to, and the method of each.
POOL_EVENTS = (
    ("connect", "_on_connect"),
    ("invalidate", "_on_invalidate"),
    ("soft_invalidate", "_on_soft_invalidate"),
    ("close", "_on_close"),
    ("detach", "_on_detach"),
    ("close_detached", "_on_close_detached"),
)


class PoolCollector:
    """Counts what one engine's (or bare pool's) connections do, in this
    process.

    Made by :func:`connmon_agent.client.instrument`. Public attributes:
    ``id`` (unique within the process), ``name``, ``target`` (no password),
    ``config`` (:class:`~connmon_agent.client.config.ClientConfig`),
    ``closed``.

    Thread-safe; fork-safe (a child sees this pool only once it uses it,
    and counts from zero); never raises from its hooks.
    """

    def __init__(self, target: Any, config: ClientConfig, *, url: Any = None, name: str | None = None) -> None:
        from sqlalchemy.engine import Engine

        self.id = str(next(_pool_ids))
        self.config = config
        self.closed = False
        self._where = config.where
        self._state = PoolState(runtime.getpid())
        self._fork_lock = threading.Lock()
        self._fork_lock_pid = self._state.pid
        self._seen_ref: weakref.ref[Any] | None = None
        # weakly: pools.instrument() keeps {target: collector} weakly keyed
        self._target_ref = weakref.ref(target)
        if isinstance(target, Engine):
            self._engine_ref: weakref.ref[Any] | None = weakref.ref(target)
            self._pool_ref: weakref.ref[Any] = weakref.ref(target.pool)
            url = target.url if url is None else url
            self.target = describe.target_of(url, target.dialect)
            self.name = name or describe.name_of("Engine", url)
        else:
            self._engine_ref = None
            self._pool_ref = weakref.ref(target)
            dialect = getattr(target, "_dialect", None)
            real = dialect if getattr(dialect, "driver", None) and getattr(dialect, "name", None) else None
            self.target = describe.target_of(url, real)
            self.name = name or describe.name_of(type(target).__name__, url)

    def __repr__(self) -> str:
        return f"<PoolCollector {self.id} {self.name}>"

    @classmethod
    def unavailable(cls, config: ClientConfig, name: str | None = None) -> PoolCollector:
        """A closed collector that watches nothing (what instrument()
        returns when connmon itself failed)."""
        self = cls.__new__(cls)
        self.id = str(next(_pool_ids))
        self.config = config
        self.closed = True
        self._where = False
        self._state = PoolState(0)
        self._fork_lock = threading.Lock()
        self._fork_lock_pid = 0
        self._seen_ref = None
        self._target_ref = lambda: None
        self._engine_ref = None
        self._pool_ref = lambda: None
        self.target = "unknown://"
        self.name = name or "unavailable"
        return self

    # -- attaching ---------------------------------------------------------

    def attach(self) -> None:
        """Listen to the pool's events and wrap its ``_do_get`` (and, for
        an engine, its dialect's transaction methods and ``dispose``)."""
        from sqlalchemy import event

        target = self._target_ref()
        for name, meth in POOL_EVENTS:
            event.listen(target, name, getattr(self, meth))
        if self._engine_ref is not None:
            wrap_engine(target, self)
        self._see_pool(self._pool_ref())

    def close(self) -> None:
        """Stop watching: remove the listeners and wrappers; the reporter
        then tells the agent this pool is gone. Never raises."""
        if self.closed:
            return
        self.closed = True
        try:
            from sqlalchemy import event

            target = self._target_ref()
            if target is None:
                return
            for name, meth in POOL_EVENTS:
                try:
                    event.remove(target, name, getattr(self, meth))
                except Exception:  # already removed, or the target went away
                    pass
            if self._engine_ref is not None:
                unwrap(target, ["_connection_cls", "_option_cls", "dispose"])
            unwrap(self._current_pool(), POOL_HOOKS)
            unwrap(self._seen_ref() if self._seen_ref is not None else None, POOL_HOOKS)
        except Exception as err:
            guard.failed("close", err)

    def _current_pool(self) -> Any:
        if self._engine_ref is not None:
            engine = self._engine_ref()
            return engine.pool if engine is not None else None
        return self._pool_ref()

    def _see_pool(self, pool: Any) -> None:
        """Wrap ``pool._do_get`` unless done already; a bare pool made by
        ``recreate()`` (its events copied over) becomes the pool this
        collector describes."""
        self._seen_ref = weakref.ref(pool) if pool is not None else None
        if pool is None or self.closed:
            return
        if getattr(pool.__dict__.get("_do_get"), "_connmon_collector", None) is self:
            return
        wrap_pool(pool, self)
        if self._engine_ref is None:
            self._pool_ref = weakref.ref(pool)

    # -- fork ------------------------------------------------------------

    def _forked(self) -> PoolState:
        """The state of this process, made fresh after a fork."""
        pid = runtime.getpid()
        if self._fork_lock_pid != pid:
            # the parent's lock may have been held at the fork
            self._fork_lock = threading.Lock()
            self._fork_lock_pid = pid
        with self._fork_lock:
            st = self._state
            if st.pid != pid:
                st = self._state = PoolState(pid)
        runtime.pid = pid
        try:
            from . import reporter

            reporter.ensure_started()
        except Exception as err:
            guard.failed("reporter start", err)
        return st

    def _mine(self) -> PoolState:
        """This process's state (the real pid check)."""
        st = self._state
        return st if st.pid == runtime.getpid() else self._forked()

    def _locked(self) -> PoolState:
        """This process's state, its lock acquired (the cheap pid check;
        the real one when the lock is contended)."""
        st = self._state
        if st.pid != runtime.pid:
            st = self._forked()
        if not st.lock.acquire(False):
            if st.pid != runtime.getpid():
                st = self._forked()
            st.lock.acquire()
        return st

    def _timed_out(self) -> None:
        st = self._locked()
        with Release(st.lock):
            st.timeouts += 1
            st.version += 1

    # -- pool events -------------------------------------------------------

    def _on_connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        try:
            st = self._locked()
            with Release(st.lock):
                st.connects += 1
                st.track_open(id(connection_record), connection_record)
                st.version += 1
            pool = getattr(connection_record, "_ConnectionRecord__pool", None)
            seen = self._seen_ref() if self._seen_ref is not None else None
            if pool is not None and pool is not seen:
                self._see_pool(pool)  # a pool recreated behind our back
        except Exception as err:
            guard.failed("connect", err)

    def _on_invalidate(self, dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        try:
            st = self._locked()
            with Release(st.lock):
                st.invalidated_hard += 1
                # the connection is closed now; the checkin that follows
                # (with dbapi_connection=None) ends the checkout
                st.forget_open(id(connection_record))
                st.version += 1
        except Exception as err:
            guard.failed("invalidate", err)

    def _on_soft_invalidate(self, dbapi_connection: Any, connection_record: Any, exception: Any) -> None:
        try:
            st = self._locked()
            with Release(st.lock):
                st.invalidated_soft += 1
                st.version += 1
        except Exception as err:
            guard.failed("soft_invalidate", err)

    def _on_close(self, dbapi_connection: Any, connection_record: Any) -> None:
        try:
            st = self._locked()
            with Release(st.lock):
                if st.forget_open(id(connection_record)):
                    st.version += 1
        except Exception as err:
            guard.failed("close", err)

    def _on_detach(self, dbapi_connection: Any, connection_record: Any) -> None:
        # the record goes back to the pool empty, without a checkin event
        try:
            now = runtime.clock()
            key = id(connection_record)
            st = self._locked()
            with Release(st.lock):
                entry = st.current.pop(key, None)
                if entry is not None:
                    st.end_hold(entry, now)
                if st.open.pop(key, None) is not None and len(st.detached) < MAX_DETACHED:
                    st.detached[id(dbapi_connection)] = True
                st.version += 1
        except Exception as err:
            guard.failed("detach", err)

    def _on_close_detached(self, dbapi_connection: Any) -> None:
        try:
            st = self._locked()
            with Release(st.lock):
                if st.detached.pop(id(dbapi_connection), None) is not None:
                    st.disconnects += 1
                    st.version += 1
        except Exception as err:
            guard.failed("close_detached", err)

    def _count(self, counter: str) -> None:
        st = self._locked()
        with Release(st.lock):
            setattr(st, counter, getattr(st, counter) + 1)
            st.version += 1

    # -- reading -----------------------------------------------------------

    @property
    def visible(self) -> bool:
        """True when this pool belongs in this process's reports: not
        closed, its engine alive, and (after a fork) used in this process."""
        if self.closed:
            return False
        if self._engine_ref is not None and self._engine_ref() is None:
            return False
        return self._state.pid == runtime.getpid()

    @property
    def version(self) -> int:
        """Changes whenever anything reported about this pool changes."""
        return self._state.version

    def snapshot(self, now: float | None = None) -> dict[str, Any] | None:
        """This pool as a report shows it (``protocol.validate_report``),
        ages relative to ``now`` (``runtime.clock()``), or None when it is
        not :attr:`visible`."""
        if not self.visible:
            return None
        if now is None:
            now = runtime.clock()
        pool = self._current_pool()
        overflow = describe.overflow_of(pool) if pool is not None else 0
        waiters = describe.waiters_of(pool) if pool is not None else 0
        body = self._state.snapshot(now, overflow, waiters)
        return {
            "id": self.id,
            "name": self.name,
            "target": self.target,
            "config": describe.pool_config(pool) if pool is not None else {},
            **body,
        }

    def checkouts(self, holder: Holder | None = None) -> list[OpenCheckout]:
        """Current checkouts of this pool, oldest first; only those taken
        under ``holder`` (or a holder nested in it) when given. Never raises."""
        try:
            st = self._state
            if st.pid != runtime.getpid() or self.closed:
                return []
            with st.lock:
                entries = list(st.current.values())
            if holder is not None:
                entries = [e for e in entries if e[CO_HOLDER] is not None and e[CO_HOLDER].within(holder)]
            now = runtime.clock()
            entries.sort(key=lambda e: e[CO_START])
            out = []
            for e in entries:
                holder_name, kind, thread = describe_holder(e)
                out.append(OpenCheckout(
                    id=e[CO_ID], pool=self.name, pool_id=self.id, age=max(0.0, now - e[CO_START]),
                    holder=holder_name, kind=kind, thread=thread, where=frames.format(e[CO_WHERE]),
                ))
            return out
        except Exception as err:
            guard.failed("checkouts", err)
            return []
