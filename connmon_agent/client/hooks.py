"""The wrappers that connect a collector to SQLAlchemy where events would
cost too much: the pool instance's ``_do_get`` and ``_do_return_conn``
(every checkout and checkin), the engine's Connection class
(transactions) and ``engine.dispose`` (the pool is replaced).

See :mod:`connmon_agent.client.collector` for why each exists. Every
wrapper passes the wrapped call's result and exceptions through unchanged
and never raises on its own account.
"""
from __future__ import annotations

import itertools
import threading
import weakref
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from . import frames, guard, runtime
from .holders import current_holder as live_holder
from .state import HOLD_BOUNDS

if TYPE_CHECKING:
    from .collector import PoolCollector

#: Checkout ids: unique within the process, never reused.
checkout_ids = itertools.count(1)

#: Connection methods counted, and the counter of each.
CONNECTION_METHODS = (
    ("_begin_impl", "transactions"),
    ("_commit_impl", "commits"),
    ("_rollback_impl", "rollbacks"),
)


class Release:
    """``with Release(lock):`` releases an already acquired lock."""

    __slots__ = ("lock",)

    def __init__(self, lock: Any) -> None:
        self.lock = lock

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


# -- wrappers ----------------------------------------------------------------

POOL_HOOKS = ["_do_get", "_do_return_conn"]


def wrap_pool(pool: Any, collector: PoolCollector) -> None:
    """Wrap the pool instance's ``_do_get`` (a record it returns is a
    checkout; time spent in it is the wait; sqlalchemy.exc.TimeoutError
    from it is a checkout timeout) and ``_do_return_conn`` (a checkin). The
    pool's own results and exceptions pass unchanged.

    The bodies are inlined: this is the hot path of every application
    checkout."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    unwrap(pool, POOL_HOOKS)
    orig_get = pool._do_get
    orig_return = pool._do_return_conn
    rt = runtime
    failed = guard.failed
    current_holder = live_holder
    current_thread = threading.current_thread
    ids = checkout_ids
    capture = frames.capture
    bounds = HOLD_BOUNDS

    def _do_get() -> Any:
        try:
            t0 = rt.clock()
        except Exception as err:
            t0 = None
            failed("checkout", err)
        try:
            record = orig_get()
        except PoolTimeout:
            try:
                collector._timed_out()
            except Exception as err:
                failed("checkout timeout", err)
            raise
        if t0 is None:
            return record
        try:
            st = collector._state
            if st.pid != rt.getpid():
                st = collector._forked()
            now = rt.clock()
            where = None
            if collector._where:
                try:
                    where = capture(2)
                except Exception as err:  # the checkout still counts, without its place
                    failed("frame capture", err)
            entry = (next(ids), now, current_holder(), current_thread(), where)
            key = id(record)
            lock = st.lock
            lock.acquire()
            try:
                st.checkouts += 1
                st.current[key] = entry
                waited = now - t0
                st.wait_sum += waited
                if waited > st.wait_max:
                    st.wait_max = waited
                if key not in st.open and getattr(record, "dbapi_connection", None) is not None:
                    # opened before this process watched the pool
                    # (instrumented late): it is open all the same
                    st.track_open(key, record)
                st.version += 1
            finally:
                lock.release()
        except Exception as err:
            failed("checkout", err)
        return record

    def _do_return_conn(record: Any) -> None:
        try:
            st = collector._state
            if st.pid != rt.pid:
                st = collector._forked()
            now = rt.clock()
            lock = st.lock
            if not lock.acquire(False):
                if st.pid != rt.getpid():
                    st = collector._forked()
                    lock = st.lock
                lock.acquire()
            try:
                entry = st.current.pop(id(record), None)
                if entry is not None:
                    st.checkins += 1
                    held = now - entry[1]
                    if held < 0.0:
                        held = 0.0
                    st.hold_counts[bisect_left(bounds, held)] += 1
                    st.hold_sum += held
                    st.version += 1
            finally:
                lock.release()
        except Exception as err:
            failed("checkin", err)
        return orig_return(record)  # type: ignore[no-any-return]

    _do_get._connmon_collector = collector  # type: ignore[attr-defined]
    _do_return_conn._connmon_collector = collector  # type: ignore[attr-defined]
    pool._do_get = _do_get
    pool._do_return_conn = _do_return_conn


def wrap_engine(engine: Any, collector: PoolCollector) -> None:
    """Count the engine's transactions through its Connection class, and
    follow ``engine.dispose()`` (which replaces ``engine.pool``; SQLAlchemy
    copies our listeners to the new pool, we wrap its hooks at once)."""
    if getattr(engine.__dict__.get("_connection_cls"), "_connmon_collector", None) is collector:
        return
    base = engine._connection_cls
    methods: dict[str, Any] = {"_connmon_collector": collector, "__module__": __name__}
    for meth, counter in CONNECTION_METHODS:
        methods[meth] = _counting(getattr(base, meth), collector, counter)
    engine._connection_cls = type(f"Connmon{base.__name__}", (base,), methods)
    # engines made by execution_options() make their Connections from ours
    engine._option_cls = type(
        f"Connmon{engine._option_cls.__name__}",
        (engine._option_cls,),
        {"_connection_cls": property(lambda self: self._proxied._connection_cls),
         "_connmon_collector": collector, "__module__": __name__},
    )
    cls_dispose = type(engine).dispose
    engine_ref = weakref.ref(engine)  # no cycle through the engine's own dict

    def dispose(*args: Any, **kwargs: Any) -> Any:
        e = engine_ref()
        result = cls_dispose(e, *args, **kwargs)
        try:
            if e is not None:
                collector._see_pool(e.pool)
                collector._state.version += 1
        except Exception as err:
            guard.failed("dispose", err)
        return result

    dispose._connmon_collector = collector  # type: ignore[attr-defined]
    engine.dispose = dispose


def _counting(orig: Any, collector: PoolCollector, counter: str) -> Any:
    def counted(self: Any, *args: Any) -> Any:
        try:
            collector._count(counter)
        except Exception as err:
            guard.failed(counter, err)
        return orig(self, *args)

    counted.__name__ = orig.__name__
    return counted


def unwrap(obj: Any, names: list[str]) -> None:
    if obj is None:
        return
    for name in names:
        wrapped = obj.__dict__.get(name)
        if wrapped is not None and hasattr(wrapped, "_connmon_collector"):
            del obj.__dict__[name]
