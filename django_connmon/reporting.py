"""Report the pooled backends' pools to the connmon agent, exactly as the
SQLAlchemy plugin reports an engine's pool: through
``connmon_agent.client.instrument`` on the bare pool.

Never raises into the application: if the client cannot be imported or
refuses the settings, the pool works unreported and the reason is logged
once per pool.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("django_connmon")


def client_api() -> Any:
    """The in-app client module, or None when it is not available."""
    try:
        from connmon_agent import client

        if hasattr(client, "instrument") and hasattr(client, "holder"):
            return client
        from connmon_agent.client import holders, pools

        class _API:
            instrument = staticmethod(pools.instrument)
            holder = staticmethod(holders.holder)
            current_holder = staticmethod(holders.current_holder)

        return _API
    except Exception:
        return None


def instrument(entry: Any) -> None:
    """Attach the agent's collector to ``entry.pool``."""
    from .conf import conf

    api = client_api()
    if api is None:
        log.debug("connmon client unavailable: pool %s is not reported", entry.alias)
        return
    try:
        entry.collector = api.instrument(
            entry.pool,
            url=entry.target,
            program_name=conf.CONNMON_PROGRAM_NAME,
            socket_path=conf.CONNMON_SOCKET,
            interval=conf.CONNMON_INTERVAL,
            service=conf.CONNMON_SERVICE,
            addr=conf.CONNMON_ADDR,
            secret_file=conf.CONNMON_SECRET_FILE,
            name=f"django:{entry.alias}",
        )
    except Exception as err:
        log.warning("django_connmon: pool %r is not reported to connmon: %s", entry.alias, err)


def forget(entry: Any) -> None:
    """Stop reporting ``entry`` (its pool was emptied by close_pool)."""
    collector, entry.collector = entry.collector, None
    if collector is not None:
        try:
            collector.close()
        except Exception:
            pass
