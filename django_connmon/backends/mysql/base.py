"""Pooled MySQL / MariaDB backend: Django's own, with a per-process pool.

Django's MySQL backend needs ``MySQLdb`` (mysqlclient). Where only PyMySQL
is installed it is installed as ``MySQLdb`` (PyMySQL's own shim), so
``pip install connmon[mysql]`` is enough.
"""
from __future__ import annotations

try:
    import MySQLdb  # noqa: F401
except ImportError:
    import pymysql

    pymysql.install_as_MySQLdb()

from django.db.backends.mysql import base as _django
from django.db.backends.mysql.creation import DatabaseCreation as _DjangoCreation

from ...resetter import RESETTERS
from ..base import PooledCreationMixin, PooledDatabaseWrapperMixin

_DRIVER = "pymysql" if getattr(_django.Database, "__name__", "") == "pymysql" else "mysqldb"


class DatabaseCreation(PooledCreationMixin, _DjangoCreation):
    pass


class DatabaseWrapper(PooledDatabaseWrapperMixin, _django.DatabaseWrapper):
    resetter = RESETTERS["mysql"]
    driver_name = _DRIVER
    creation_class = DatabaseCreation

    def get_connection_params(self):  # type: ignore[no-untyped-def]
        params = super().get_connection_params()
        if _DRIVER == "pymysql" and self.is_pooled():
            # session state tracking: see MySQLResetter
            params["client_flag"] = self.resetter.connect_flags(params.get("client_flag", 0))
        return params
