"""The pooling layer shared by the three backends.

:class:`PooledDatabaseWrapperMixin` goes in front of one of Django's own
``DatabaseWrapper`` classes. Django keeps doing everything it does — its
connection parameters, its connection-making code (which becomes the
pool's creator), its transaction handling — but:

* ``get_new_connection`` checks a raw driver connection out of this
  process's pool for the alias, and Django holds that raw connection, so
  its attribute writes (autocommit, isolation level) reach the driver;
* at the end of every request (``close_old_connections``) the connection
  goes back to the pool, whatever ``CONN_MAX_AGE`` says: the pool keeps
  connections, ``POOL["recycle"]`` bounds their age;
* after ``fork()`` the inherited connection is forgotten, never closed: the
  ``connection`` attribute reads ``None`` in any process but the one that
  checked it out, so Django connects again — from the child's own pool.

What a checkout and a return cost, and why. The aim is the round trips of
Django's own persistent connections (``CONN_MAX_AGE > 0``): none beyond
the application's queries, unless a connection needs repair.

Opening (once per pooled connection): Django's connect, then
``Resetter.prepare`` (MySQL with pymysql: ``SET SESSION
session_track_state_change = ON``), then Django's ``init_connection_state``
(MySQL: ``SET SESSION TRANSACTION ISOLATION LEVEL ...``). The state after
that is recorded as the connection's clean state.

Checkout: the pool hands out an idle connection (no ping unless
``POOL["pre_ping"]``; SQLAlchemy's own reset-on-return is off). Django's
connect steps run as for a new connection: ``set_autocommit`` (a local
compare; the driver sends nothing when it already matches) and
``init_connection_state``, which with ``POOL["reset_session"]`` (default)
runs again only when the session may have changed since it last ran
(``Resetter.session_changed``): on MySQL with pymysql the server flags every
statement that changed session state (a raw ``SET SESSION``, ``SET @var``,
``SET NAMES``, ``USE``...), so an untouched session costs nothing and a
changed one gets Django's set-up again; with mysqlclient nothing can be
told and it runs on every checkout; on PostgreSQL and SQLite Django's
set-up is local checks only. With ``reset_session`` False it runs only
when the pool opened the connection.

Return (``close()``, also at request end): closing inside an atomic block
discards the connection (the transaction is lost, as Django's own close
would lose it). Otherwise ``Resetter.reset`` restores the clean state:
``ROLLBACK`` only when a transaction may be open, read locally (pymysql's
SERVER_STATUS_IN_TRANS flag and autocommit, psycopg's transaction status,
sqlite3's ``in_transaction``; mysqlclient: always), and autocommit /
isolation level only when they differ from the clean state. A connection
that cannot be reset is discarded, never returned dirty.

Not pooled, Django's behaviour unchanged: the ``__no_db__`` connections
Django makes to create and drop test databases, and in-memory SQLite
databases (each connection is its own database).
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS

from .. import scopes
from ..options import parse_pool_options
from ..pools import Checkout, PoolEntry, registry
from ..resetter import Resetter


class PooledDatabaseWrapperMixin:
    """Mix in before a Django ``DatabaseWrapper``; see the module docstring."""

    resetter: Resetter
    #: The URL scheme's driver part, e.g. "pymysql" (set per backend).
    driver_name = ""

    _cm_raw: Any = None
    _cm_checkout: Checkout | None = None
    _cm_pid = 0

    # -- the raw connection Django holds ------------------------------------

    @property
    def connection(self) -> Any:
        raw = self._cm_raw
        if raw is not None and self._cm_pid != os.getpid():
            self._cm_forget_inherited()
            return None
        return raw

    @connection.setter
    def connection(self, value: Any) -> None:
        co = self._cm_checkout
        if co is not None and value is not co.raw:
            # Django let go of the connection without closing it.
            self._cm_checkout = None
            co.entry.release(co)
        self._cm_raw = value
        self._cm_pid = os.getpid()

    def _cm_forget_inherited(self) -> None:
        """A forked child: drop the parent's connection and its transaction
        state without a word to the server."""
        self._cm_raw = None
        self._cm_checkout = None
        self.in_atomic_block = False
        self.savepoint_ids = []
        self.atomic_blocks = []
        self.needs_rollback = False
        self.closed_in_transaction = False
        self.run_on_commit = []

    # -- pooling --------------------------------------------------------------

    def is_pooled(self) -> bool:
        """Whether this wrapper's connections come from a pool."""
        return self.alias != NO_DB_ALIAS

    _cm_entry: tuple[Any, ...] | None = None

    def pool_entry(self) -> PoolEntry:
        """This process's pool for the alias and its current settings."""
        sd = self.settings_dict
        cached = self._cm_entry
        if (
            cached is not None
            and cached[0] is sd
            and cached[1] == sd.get("NAME")
            and not cached[2].retired
            and cached[2].pid == registry.pid
        ):
            registry.check_fork()
            if cached[2].pid == registry.pid:
                return cached[2]
        fingerprint = repr(
            (
                self.vendor, sd.get("NAME"), sd.get("USER"), sd.get("PASSWORD"),
                sd.get("HOST"), sd.get("PORT"), sorted(sd.get("OPTIONS", {}).items(), key=str),
                sd.get("TIME_ZONE"), sd.get("AUTOCOMMIT"),
            )
        )
        key = f"{self.alias}:{hashlib.sha1(fingerprint.encode()).hexdigest()[:16]}"
        entry = registry.entry(key, lambda pid: self._make_entry(key, pid))
        self._cm_entry = (sd, sd.get("NAME"), entry)
        return entry

    def _make_entry(self, key: str, pid: int) -> PoolEntry:
        from ..conf import conf

        options = parse_pool_options(
            self.alias,
            self.settings_dict,
            vendor=self.vendor,
            mysqlpool_backend=conf.MYSQLPOOL_BACKEND,
            mysqlpool_arguments=conf.MYSQLPOOL_ARGUMENTS,
        )
        errors = [p for p in options.problems if not p.warning]
        if errors:
            raise ImproperlyConfigured(str(errors[0]))
        entry = PoolEntry(self.alias, key, options, self.resetter, self.target_url(), pid)
        if options.report and conf.CONNMON_REPORT:
            from .. import reporting

            reporting.instrument(entry)
        return entry

    def target_url(self) -> str:
        """``vendor+driver://user@host:port/name``, never the password."""
        sd = self.settings_dict
        if self.vendor == "sqlite":
            return f"sqlite+{self.driver_name}:///{sd.get('NAME') or ''}"
        host = sd.get("HOST") or "localhost"
        port = f":{sd['PORT']}" if sd.get("PORT") else ""
        user = f"{sd['USER']}@" if sd.get("USER") else ""
        return f"{self.vendor}+{self.driver_name}://{user}{host}{port}/{sd.get('NAME') or ''}"

    def _cm_prepare(self) -> None:
        """Per-checkout wrapper state Django sets while connecting (hook)."""

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not self.is_pooled():
            return super().get_new_connection(conn_params)  # type: ignore[misc]
        self._cm_prepare()
        entry = self.pool_entry()
        make = super().get_new_connection  # type: ignore[misc]
        where = scopes.where(2) if scopes.current() is not None else None
        co = entry.checkout(lambda: self._cm_open(make, conn_params), where)
        self._cm_checkout = co
        return co.raw

    def _cm_open(self, make: Any, conn_params: dict[str, Any]) -> Any:
        """A new raw connection for the pool (Django's code makes it)."""
        raw = make(conn_params)
        self.resetter.prepare(raw)
        return raw

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        co = self._cm_checkout
        if co is not None and co.entry.is_fresh(co):
            # Django has set the connection up: that is its clean state.
            co.entry.record_clean(co)

    def init_connection_state(self) -> None:
        co = self._cm_checkout
        if co is None:
            return super().init_connection_state()  # type: ignore[misc,no-any-return]
        if not co.entry.is_fresh(co) and (
            not co.entry.options.reset_session or not self.resetter.session_changed(co.raw)
        ):
            return  # still as Django set it up
        super().init_connection_state()  # type: ignore[misc]
        self.resetter.session_clean(co.raw)

    def _close(self) -> None:
        co = self._cm_checkout
        if co is None:
            return super()._close()  # type: ignore[misc]
        self._cm_checkout = None
        # Closing inside an atomic block must lose the transaction, as
        # Django's own close does: discard rather than reset.
        co.entry.release(co, discard=self.in_atomic_block)

    def close_if_unusable_or_obsolete(self) -> None:
        if self._cm_checkout is not None and self.connection is not None:
            # Pooled: the end of every request returns the connection.
            self.close()
            return
        super().close_if_unusable_or_obsolete()  # type: ignore[misc]

    @property
    def checkout(self) -> Checkout | None:
        """The pool checkout this wrapper holds, if any."""
        return self._cm_checkout if self.connection is not None else None


class PooledCreationMixin:
    """Test databases: empty the alias's pools before creating, cloning or
    dropping one, so no pooled session keeps the database in use."""

    def _cm_close_pools(self) -> None:
        from .. import close_pool

        self.connection.close()  # type: ignore[attr-defined]
        close_pool(self.connection.alias)  # type: ignore[attr-defined]

    def create_test_db(self, *args: Any, **kwargs: Any) -> Any:
        self._cm_close_pools()
        return super().create_test_db(*args, **kwargs)  # type: ignore[misc]

    def clone_test_db(self, *args: Any, **kwargs: Any) -> Any:
        self._cm_close_pools()
        return super().clone_test_db(*args, **kwargs)  # type: ignore[misc]

    def destroy_test_db(self, *args: Any, **kwargs: Any) -> Any:
        self._cm_close_pools()
        return super().destroy_test_db(*args, **kwargs)  # type: ignore[misc]
