"""The client: the part of connmon that runs inside users' applications.

Public API (used by the SQLAlchemy plugin and the Django backends alike):

``instrument(engine_or_pool, *, url=None, program_name=None, socket_path=None, interval=None, service=None, addr=None, where=None, name=None) -> PoolCollector``
    Watch an Engine or a bare Pool and report it to the local agent
    (see :func:`connmon_agent.client.pools.instrument`).
``holder(name, kind="request")``
    ``with holder("GET /orders") as h:`` attributes checkouts in the block
    to the request; ``h.open_checkouts()`` lists those still checked out;
    ``h.bind(fn)`` / ``h.adopt()`` carry it into threads
    (see :mod:`connmon_agent.client.holders`).
``current_holder()``
    The holder of the running code, or None.
``open_checkouts(holder=None)``
    Every connection checked out right now in this process (or under
    ``holder``), oldest first, as :class:`OpenCheckout`.
``check_fork()``
    Make this process's client state its own if it was forked without the
    fork hooks running (every pool event also does this by itself). For
    servers' post-fork hooks; cheap; never raises.
``shutdown()``
    Stop the reporter thread and close its socket (it restarts on demand).

Guarantees: never raises into the application (only ConfigError for bad
arguments), never blocks an application thread on I/O, bounded memory,
fork-safe. Importing this package imports SQLAlchemy lazily and nothing
optional.
"""
from __future__ import annotations

from .collector import PoolCollector
from .config import ClientConfig
from .holders import Holder, OpenCheckout, current_holder, holder
from .pools import instrument, open_checkouts
from .reporter import shutdown

__all__ = [
    "ClientConfig",
    "Holder",
    "OpenCheckout",
    "PoolCollector",
    "check_fork",
    "current_holder",
    "holder",
    "instrument",
    "open_checkouts",
    "shutdown",
]


def check_fork() -> bool:
    """True if this process is a fork whose client state was just reset.

    The pid check every pool event makes does the same lazily; call this
    from a server's post-fork hook (uWSGI ``@postfork``) to drop the
    parent's reporter socket at once. Never raises.
    """
    from . import reporter, runtime

    try:
        r = reporter._reporter
        if r is not None and r.pid != runtime.getpid():
            reporter._after_fork_child()
            from . import guard

            guard.reset_after_fork()
            return True
    except Exception:
        pass
    return False
