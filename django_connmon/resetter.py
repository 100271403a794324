"""Per-driver knowledge: the clean state of a connection, restoring it,
pinging, and the socket behind it.

A connection goes back to the pool only in the state Django expects of a
fresh one: no open transaction, autocommit and isolation level as they
were right after Django set the connection up. Whatever cannot be
restored makes the caller discard the connection.

Reads are local where the driver allows (pymysql's server status flag,
psycopg's transaction status, sqlite3's ``in_transaction``), so returning
a clean connection costs no round trip.

Session state (MySQL's session variables, e.g. the isolation level Django
sets with ``SET SESSION``) lives on the server, where it cannot be read for
free. With pymysql the server is asked to say when it changes (session
state tracking, below), so Django's session set-up is re-run only on a
checkout whose session was changed since; where it cannot be told,
:meth:`Resetter.session_changed` says True and the set-up runs every time.
"""
from __future__ import annotations

from typing import Any

_MISSING = object()


class Resetter:
    """Base: DB-API calls only. Subclasses know one driver family."""

    vendor = "unknown"

    def snapshot(self, raw: Any) -> dict[str, Any]:
        """The clean state to restore on every return (taken once)."""
        return {}

    def in_transaction(self, raw: Any) -> bool:
        return True  # unknown: roll back to be sure

    def prepare(self, raw: Any) -> None:
        """Once, on a connection the pool has just opened, before Django's
        set-up runs on it. Never raises."""

    def session_changed(self, raw: Any) -> bool:
        """Whether the session state may have changed since
        :meth:`session_clean` (True when it cannot be told)."""
        return True

    def session_clean(self, raw: Any) -> None:
        """Django's session set-up has just run: the session is clean."""

    def reset(self, raw: Any, clean: dict[str, Any]) -> None:
        """Restore ``clean``; raises the driver's error if it cannot."""
        if self.in_transaction(raw):
            raw.rollback()

    def ping(self, raw: Any) -> bool:
        cur = raw.cursor()
        try:
            cur.execute("SELECT 1")
            cur.fetchall()
        finally:
            cur.close()
        return True

    def socket_fd(self, raw: Any) -> int | None:
        """The file descriptor of the connection's socket, if any."""
        try:
            fd = raw.fileno()
        except Exception:
            return None
        return fd if type(fd) is int and fd >= 0 else None


#: MySQL protocol status flag: "session state changed" (sent only to
#: clients with the CLIENT_SESSION_TRACK capability).
SERVER_SESSION_STATE_CHANGED = 1 << 14
#: Capability flag asking the server for session state tracking.
CLIENT_SESSION_TRACK = 1 << 23

_tracked_classes: dict[type, type] = {}


def _tracked_class(base: type) -> type:
    """``base`` (pymysql's Connection) with a sticky "session changed" flag:
    pymysql stores the status flags of every OK and EOF packet in
    ``server_status``; this keeps the SERVER_SESSION_STATE_CHANGED bit of
    any of them until :meth:`MySQLResetter.session_clean` clears it."""
    cls = _tracked_classes.get(base)
    if cls is not None:
        return cls

    def get_status(self: Any) -> Any:
        return self._cm_status

    def set_status(self: Any, value: Any) -> None:
        self._cm_status = value
        if value is not None and value & SERVER_SESSION_STATE_CHANGED:
            self._cm_changed = True

    cls = type(
        f"SessionTracked{base.__name__}",
        (base,),
        {
            "__module__": __name__,
            "_cm_status": None,
            "_cm_changed": True,
            "_cm_tracked": False,
            "server_status": property(get_status, set_status),
        },
    )
    _tracked_classes[base] = cls
    return cls


class MySQLResetter(Resetter):
    """pymysql (installed as MySQLdb) and mysqlclient.

    The session isolation level and ``SQL_AUTO_IS_NULL`` are set by
    Django's own ``init_connection_state`` on every new connection. With
    pymysql, connections are opened with CLIENT_SESSION_TRACK and
    ``session_track_state_change=ON``: every reply to a statement that
    changed the session (``SET SESSION ...``, ``SET @x``, ``SET NAMES``,
    ``USE``, temporary tables, prepared statements, a procedure doing any
    of these) carries SERVER_SESSION_STATE_CHANGED, which is kept
    (:func:`_tracked_class`) until Django's set-up has run again. A
    one-statement ``SET STATEMENT ... FOR`` changes nothing and is not
    flagged. Turning ``session_track_state_change`` off on a pooled
    connection is not flagged either: don't. With mysqlclient, or a server
    without the variable (MySQL < 5.7, MariaDB < 10.2), nothing can be
    told and the set-up runs on every checkout.
    """

    vendor = "mysql"

    def connect_flags(self, flags: int) -> int:
        """``client_flag`` for a new pymysql connection."""
        return flags | CLIENT_SESSION_TRACK

    def prepare(self, raw: Any) -> None:
        base = type(raw)
        if base.__module__ != "pymysql.connections" or base.__name__ != "Connection":
            return  # mysqlclient, or something we do not know
        try:
            status = raw.__dict__.pop("server_status", None)
            raw.__class__ = _tracked_class(base)
            raw.server_status = status
            both = getattr(raw, "client_flag", 0) & getattr(raw, "server_capabilities", 0)
            if not both & CLIENT_SESSION_TRACK:
                return  # the server would never flag a change
            cur = raw.cursor()
            try:
                cur.execute("SET SESSION session_track_state_change = ON")
            finally:
                cur.close()
            raw._cm_tracked = True
        except Exception:
            pass  # untracked (_cm_tracked stays False): reset every time

    def session_changed(self, raw: Any) -> bool:
        return getattr(raw, "_cm_changed", True)

    def session_clean(self, raw: Any) -> None:
        if getattr(raw, "_cm_tracked", False):
            raw._cm_changed = False

    def snapshot(self, raw: Any) -> dict[str, Any]:
        return {"autocommit": bool(raw.get_autocommit())}

    def in_transaction(self, raw: Any) -> bool:
        status = getattr(raw, "server_status", None)
        if type(status) is not int:  # mysqlclient: no local status flags
            return True
        # pymysql keeps the status flags of the last OK packet, but a result
        # set (e.g. MariaDB's INSERT ... RETURNING) does not update them: with
        # autocommit off, a transaction may be open whatever the flag says.
        # With autocommit on, only an explicit BEGIN opens one, and its OK
        # packet sets SERVER_STATUS_IN_TRANS.
        return bool(status & 1) or not raw.get_autocommit()

    def reset(self, raw: Any, clean: dict[str, Any]) -> None:
        if self.in_transaction(raw):
            raw.rollback()
        want = clean.get("autocommit")
        if want is not None and bool(raw.get_autocommit()) != want:
            raw.autocommit(want)

    def ping(self, raw: Any) -> bool:
        try:
            raw.ping(False)
        except TypeError:
            raw.ping()
        return True

    def socket_fd(self, raw: Any) -> int | None:
        sock = getattr(raw, "_sock", None)  # pymysql
        if sock is not None:
            try:
                return sock.fileno()
            except OSError:
                return None
        return super().socket_fd(raw)


class PostgreSQLResetter(Resetter):
    """psycopg 3 and psycopg2: autocommit and isolation are attributes."""

    vendor = "postgresql"

    def snapshot(self, raw: Any) -> dict[str, Any]:
        return {"autocommit": raw.autocommit, "isolation_level": raw.isolation_level}

    def in_transaction(self, raw: Any) -> bool:
        info = getattr(raw, "info", None)
        status = getattr(info, "transaction_status", _MISSING)
        if status is _MISSING:  # psycopg2
            status = raw.get_transaction_status()
        return int(status) != 0  # IDLE

    def reset(self, raw: Any, clean: dict[str, Any]) -> None:
        if self.in_transaction(raw):
            raw.rollback()
        if raw.isolation_level != clean["isolation_level"]:
            raw.isolation_level = clean["isolation_level"]
        if raw.autocommit != clean["autocommit"]:
            raw.autocommit = clean["autocommit"]


class SQLiteResetter(Resetter):
    """sqlite3: Django drives autocommit through ``isolation_level``."""

    vendor = "sqlite"

    def snapshot(self, raw: Any) -> dict[str, Any]:
        return {"isolation_level": raw.isolation_level}

    def in_transaction(self, raw: Any) -> bool:
        return bool(raw.in_transaction)

    def reset(self, raw: Any, clean: dict[str, Any]) -> None:
        if raw.in_transaction:
            raw.rollback()
        if raw.isolation_level != clean["isolation_level"]:
            raw.isolation_level = clean["isolation_level"]

    def socket_fd(self, raw: Any) -> int | None:
        return None


RESETTERS: dict[str, Resetter] = {
    r.vendor: r for r in (MySQLResetter(), PostgreSQLResetter(), SQLiteResetter())
}
