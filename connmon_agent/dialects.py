"""The driver-suffix URL form of the original connmon:
``mysql+pymysql_connmon://...`` is the real ``mysql+pymysql`` dialect with
the connmon plugin switched on.

Each name below is a ``sqlalchemy.dialects`` entry point (see setup.py).
The classes are built on first access (module ``__getattr__``), so
importing this module imports no driver and no dialect; building a class
imports the real dialect module, which in turn imports its driver only when
an engine is created.

The ``connmon_*`` URL parameters work as with ``?plugin=connmon``: they are
validated when the engine is created (ConfigError naming a bad one) and
removed before the driver sees the URL.
"""
from __future__ import annotations

import importlib
from typing import Any

from .client import config as _config

#: entry point attribute -> (module of the real dialect, class name in it)
REAL_DIALECTS = {
    "mysql_pymysql": ("sqlalchemy.dialects.mysql.pymysql", "MySQLDialect_pymysql"),
    "mysql_mysqldb": ("sqlalchemy.dialects.mysql.mysqldb", "MySQLDialect_mysqldb"),
    "postgresql_psycopg2": ("sqlalchemy.dialects.postgresql.psycopg2", "PGDialect_psycopg2"),
    "postgresql_psycopg": ("sqlalchemy.dialects.postgresql.psycopg", "PGDialect_psycopg"),
    "sqlite_pysqlite": ("sqlalchemy.dialects.sqlite.pysqlite", "SQLiteDialect_pysqlite"),
}

__all__ = sorted(REAL_DIALECTS)


class ConnmonDialectMixin:
    """Turns connmon on for a real dialect class and keeps ``connmon_*``
    parameters away from it."""

    @classmethod
    def get_dialect_cls(cls, url: Any) -> Any:
        # called by create_engine before anything connects: bad parameters
        # fail here, naming themselves
        _config.config_from_url_query(url.query)
        return cls

    @classmethod
    def get_pool_class(cls, url: Any) -> Any:
        return super().get_pool_class(_config.strip_url_params(url))  # type: ignore[misc]

    def get_dialect_pool_class(self, url: Any) -> Any:
        return super().get_dialect_pool_class(_config.strip_url_params(url))  # type: ignore[misc]

    def create_connect_args(self, url: Any) -> Any:
        return super().create_connect_args(_config.strip_url_params(url))  # type: ignore[misc]

    def on_connect_url(self, url: Any) -> Any:
        return super().on_connect_url(_config.strip_url_params(url))  # type: ignore[misc]

    @classmethod
    def engine_created(cls, engine: Any) -> None:
        super().engine_created(engine)  # type: ignore[misc]
        from .plugin import instrument_engine

        instrument_engine(engine, _config.config_from_url_query(engine.url.query))


def build(name: str) -> type:
    """The connmon twin of the real dialect behind entry point ``name``."""
    module_name, class_name = REAL_DIALECTS[name]
    real = getattr(importlib.import_module(module_name), class_name)
    cls = type(f"{class_name}_connmon", (ConnmonDialectMixin, real), {"__module__": __name__})
    return cls


def __getattr__(name: str) -> Any:
    if name not in REAL_DIALECTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = build(name)
    globals()[name] = cls
    return cls
