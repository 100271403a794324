"""Pooled SQLite backend for file databases.

In-memory databases are not pooled (every connection to ``:memory:`` is a
database of its own, and Django keeps a shared-cache test database alive by
never closing its connection): for them this is Django's backend unchanged.
"""
from __future__ import annotations

from django.db.backends.sqlite3 import base as _django
from django.db.backends.sqlite3.creation import DatabaseCreation as _DjangoCreation

from ...resetter import RESETTERS
from ..base import PooledCreationMixin, PooledDatabaseWrapperMixin


class DatabaseCreation(PooledCreationMixin, _DjangoCreation):
    pass


class DatabaseWrapper(PooledDatabaseWrapperMixin, _django.DatabaseWrapper):
    resetter = RESETTERS["sqlite"]
    driver_name = "pysqlite"
    creation_class = DatabaseCreation

    def is_pooled(self) -> bool:
        return super().is_pooled() and not self.is_in_memory_db()
