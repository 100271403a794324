"""The collectors of this process: made by :func:`instrument`, held weakly
(a pool whose engine was garbage-collected is reported gone), read by the
reporter and by :func:`open_checkouts`.

Constraints: :func:`instrument` raises ConfigError for bad arguments and
nothing else; the rest never raises.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from . import guard, runtime
from .collector import PoolCollector
from .config import make_config
from .describe import parse_url
from .holders import Holder, OpenCheckout
from ..errors import ConfigError

_lock = threading.Lock()
#: pool id -> collector (weakly: the pool's listeners keep it alive)
_collectors: dict[str, weakref.ref[PoolCollector]] = {}
#: engine or pool -> its collector
_by_target: weakref.WeakKeyDictionary[Any, PoolCollector] = weakref.WeakKeyDictionary()


def instrument(
    target: Any,
    *,
    url: Any = None,
    program_name: str | None = None,
    socket_path: str | None = None,
    interval: float | None = None,
    service: str | None = None,
    addr: str | None = None,
    where: bool | str | None = None,
    name: str | None = None,
    secret_file: str | None = None,
) -> PoolCollector:
    """Attach a collector to an Engine or a bare Pool and make sure this
    process's reporter thread runs (started lazily, once per process).

    ``url`` (string or URL) names the database of a bare pool, shown
    without password; an engine's own URL is used otherwise. ``name``
    overrides the pool's display name (default ``Engine(<url>)``). The
    other settings are those of the ``connmon_*`` URL parameters;
    ``where`` turns frame capture on or off.

    Instrumenting the same engine or pool again returns its collector (so
    does a pool made by ``recreate()`` from an instrumented one, whose
    events SQLAlchemy copied). Raises ConfigError for bad arguments; any
    failure of connmon itself is counted and logged, never raised: the
    collector returned then simply reports nothing.
    """
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    if not isinstance(target, (Engine, Pool)):
        raise ConfigError(f"instrument() takes a SQLAlchemy Engine or Pool, not {type(target).__name__}")
    if name is not None and (not isinstance(name, str) or not name):
        raise ConfigError("instrument() name must be a non-empty string")
    config = make_config(
        program_name=program_name, socket_path=socket_path, interval=interval,
        service=service, addr=addr, where=where, secret_file=secret_file,
    )
    parsed = parse_url(url)
    with _lock:
        existing = _by_target.get(target) or _listening_collector(target)
        if existing is not None and not existing.closed:
            _by_target[target] = existing
            _adopt(existing, target)
            return existing
        try:
            collector = PoolCollector(target, config, url=parsed, name=name)
        except Exception as err:
            guard.failed("instrument", err)
            return PoolCollector.unavailable(config, name)
        try:
            collector.attach()
        except Exception as err:
            guard.failed("instrument", err)
            collector.close()
            return collector
        _by_target[target] = collector
        _collectors[collector.id] = weakref.ref(collector)
    try:
        from . import reporter

        # Wake a reporter already sleeping towards a longer interval (or
        # idle with nothing to report) so a new pool is reported at once.
        reporter.ensure_started().wake.set()
    except Exception as err:
        guard.failed("reporter start", err)
    return collector


def _listening_collector(target: Any) -> PoolCollector | None:
    """The collector already listening to ``target`` (a pool recreated from
    an instrumented one carries its listeners)."""
    try:
        for fn in target.dispatch.connect:
            owner = getattr(fn, "__self__", None)
            if isinstance(owner, PoolCollector):
                return owner
    except Exception:
        pass
    return None


def _adopt(collector: PoolCollector, target: Any) -> None:
    from sqlalchemy.pool import Pool

    if isinstance(target, Pool):
        try:
            collector._see_pool(target)
        except Exception as err:
            guard.failed("instrument", err)


def collectors() -> list[tuple[str, PoolCollector | None]]:
    """Every pool id known to this process with its collector (None once
    garbage-collected, until :func:`prune`)."""
    with _lock:
        return [(pid, ref()) for pid, ref in _collectors.items()]


def prune() -> None:
    """Forget collectors that were garbage-collected or closed."""
    with _lock:
        for pid, ref in list(_collectors.items()):
            collector = ref()
            if collector is None or collector.closed:
                del _collectors[pid]


def open_checkouts(holder: Holder | None = None) -> list[OpenCheckout]:
    """Connections checked out right now in this process (under ``holder``
    or one nested in it, when given), oldest first. Never raises."""
    out: list[OpenCheckout] = []
    try:
        for _pid, collector in collectors():
            if collector is not None:
                out.extend(collector.checkouts(holder))
        out.sort(key=lambda c: -c.age)
    except Exception as err:
        guard.failed("open_checkouts", err)
    return out


def _after_fork_child() -> None:
    global _lock
    _lock = threading.Lock()


runtime.on_fork_child(_after_fork_child)
