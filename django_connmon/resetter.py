"""Per-driver knowledge: the clean state of a connection, restoring it,
pinging, and the socket behind it.

A connection goes back to the pool only in the state Django expects of a
fresh one: no open transaction, autocommit and isolation level as they
were right after Django set the connection up. Whatever cannot be
restored makes the caller discard the connection.

Reads are local where the driver allows (pymysql's server status flag,
psycopg's transaction status, sqlite3's ``in_transaction``), so returning
a clean connection costs no round trip.
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


class MySQLResetter(Resetter):
    """pymysql (installed as MySQLdb) and mysqlclient.

    The session isolation level is re-applied by Django's own
    ``init_connection_state`` on every checkout, as on every new connection.
    """

    vendor = "mysql"

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
