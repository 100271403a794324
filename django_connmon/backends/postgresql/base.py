"""Pooled PostgreSQL backend (psycopg 3 or psycopg2, as Django picks)."""
from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as _django
from django.db.backends.postgresql.creation import DatabaseCreation as _DjangoCreation
from django.db.backends.postgresql.psycopg_any import IsolationLevel, is_psycopg3

from ...resetter import RESETTERS
from ..base import PooledCreationMixin, PooledDatabaseWrapperMixin


class DatabaseCreation(PooledCreationMixin, _DjangoCreation):
    pass


class DatabaseWrapper(PooledDatabaseWrapperMixin, _django.DatabaseWrapper):
    resetter = RESETTERS["postgresql"]
    driver_name = "psycopg" if is_psycopg3 else "psycopg2"
    creation_class = DatabaseCreation

    @property
    def pool(self) -> None:
        # Django's own psycopg pool is replaced by ours (check E010).
        return None

    def _cm_prepare(self) -> None:
        # Django's get_new_connection sets this only when it connects; a
        # reused connection needs it too (same rules as Django's).
        value = self.settings_dict["OPTIONS"].get("isolation_level")
        if value is None:
            self.isolation_level = IsolationLevel.READ_COMMITTED
            return
        try:
            self.isolation_level = IsolationLevel(value)
        except ValueError:
            raise ImproperlyConfigured(
                f"Invalid transaction isolation level {value} specified. "
                "Use one of the psycopg.IsolationLevel values."
            ) from None

    def get_connection_params(self):  # type: ignore[no-untyped-def]
        if self.is_pooled() and self.settings_dict["OPTIONS"].get("pool"):
            raise ImproperlyConfigured(
                f"django_connmon.E010: DATABASES[{self.alias!r}]['OPTIONS']['pool'] "
                "cannot be combined with django_connmon's pool (use ['POOL'])"
            )
        return super().get_connection_params()
