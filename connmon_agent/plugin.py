"""The SQLAlchemy engine plugin: ``...?plugin=connmon`` turns connmon on
for an engine with no code change.

URL parameters (all optional, all removed before the driver sees the URL):

``connmon_program_name``  name the process reports under (default: the
                          basename of ``sys.argv[0]``)
``connmon_socket``        the agent's Unix socket (default:
                          ``connmon_agent.paths.default_socket_path()``)
``connmon_interval``      seconds between reports (default 1)
``connmon_service``       cluster service name (validated, kept for the
                          cluster work)
``connmon_addr``          ``HOST:PORT`` of an agent (validated, kept for
                          the cluster work)
``connmon_where``         ``on``/``off``: capture the first application
                          frame of every checkout (default off:
                          it costs 1-3 us per checkout)

An unknown ``connmon_*`` parameter, one given twice or empty, or a bad
value is a :class:`~connmon_agent.errors.ConfigError` naming the
parameter, raised by ``create_engine``.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.engine import CreateEnginePlugin

from .client import config as _config


class ConnmonPlugin(CreateEnginePlugin):
    """Registered as the ``sqlalchemy.plugins`` entry point ``connmon``."""

    def __init__(self, url: Any, kwargs: dict[str, Any]) -> None:
        super().__init__(url, kwargs)
        self.config = _config.config_from_url_query(url.query)

    def update_url(self, url: Any) -> Any:
        return _config.strip_url_params(url)

    def engine_created(self, engine: Any) -> None:
        instrument_engine(engine, self.config)


def instrument_engine(engine: Any, config: _config.ClientConfig) -> None:
    """Instrument ``engine`` with a config parsed from its URL. Never
    raises (the URL was validated before the engine was made)."""
    from .client import guard
    from .client.pools import instrument

    try:
        instrument(
            engine,
            program_name=config.program_name,
            socket_path=config.socket_path,
            interval=config.interval,
            service=config.service,
            addr=None if config.addr is None else f"{config.addr[0]}:{config.addr[1]}",
            where=config.where,
            secret_file=config.secret_file,
        )
    except Exception as err:
        guard.failed("plugin", err)
