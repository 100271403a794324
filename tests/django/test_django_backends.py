"""The pooled backends under Django's test client, on SQLite, MariaDB and
PostgreSQL: reuse proven by the server's own session id, and the state a
connection goes back to the pool in."""
from __future__ import annotations

import sqlite3

import pytest
from django.db import connections, transaction
from django.test import Client

from django_connmon import pool_status
from django_connmon.pools import registry

SESSION_SQL = {"mysql": "SELECT CONNECTION_ID()", "postgresql": "SELECT pg_backend_pid()"}


def session_id(alias: str):
    conn = connections[alias]
    if conn.vendor == "sqlite":
        conn.ensure_connection()
        return id(conn.connection)
    with conn.cursor() as cur:
        cur.execute(SESSION_SQL[conn.vendor])
        return cur.fetchone()[0]


def entry_of(alias: str):
    [entry] = registry.entries(alias)
    return entry


def test_requests_reuse_one_server_session(alias):
    client = Client()
    sessions = []
    for _ in range(4):
        r = client.get(f"/session/?using={alias}")
        assert r.status_code == 200
        sessions.append(r.json()["session"] if connections[alias].vendor != "sqlite" else r.json()["raw"])
        connections[alias].close()  # what request_finished does in production
    assert len(set(sessions)) == 1
    st = entry_of(alias).status()
    assert st["checkouts"] >= 4 and st["connections"] == 1 and st["checked_out"] == 0


def test_unpooled_django_backend_opens_a_new_session_each_time(alias):
    """The contrast that makes the test above meaningful."""
    conn = connections[alias]
    if conn.vendor == "sqlite":
        pytest.skip("SQLite has no server session")
    engine = f"django.db.backends.{conn.vendor}"
    from django.db.utils import load_backend

    wrapper = load_backend(engine).DatabaseWrapper(dict(conn.settings_dict, ENGINE=engine), alias="plain")
    seen = set()
    for _ in range(2):
        with wrapper.cursor() as cur:
            cur.execute(SESSION_SQL[conn.vendor])
            seen.add(cur.fetchone()[0])
        wrapper.close()
    assert len(seen) == 2


def test_django_holds_the_raw_driver_connection(alias):
    conn = connections[alias]
    conn.ensure_connection()
    raw = conn.connection
    # the driver's own class (pymysql's may be subclassed for session tracking)
    modules = {cls.__module__.split(".")[0] for cls in type(raw).__mro__}
    assert modules & {"pymysql", "MySQLdb", "psycopg", "psycopg2"} or isinstance(raw, sqlite3.Connection)
    assert conn.checkout is not None and conn.checkout.raw is raw


def test_open_transaction_is_rolled_back_on_return(alias):
    from cmtestapp.models import Item

    conn = connections[alias]
    Item.objects.using(alias).all().delete()
    first = session_id(alias)
    conn.set_autocommit(False)
    Item.objects.using(alias).create(name="uncommitted")
    raw = conn.connection
    assert conn.resetter.in_transaction(raw)
    conn.close()
    assert not conn.resetter.in_transaction(raw)
    assert session_id(alias) == first
    assert Item.objects.using(alias).count() == 0


def test_autocommit_is_restored_on_return(alias):
    conn = connections[alias]
    session_id(alias)
    raw = conn.connection
    clean = conn.resetter.snapshot(raw)
    # The application turns autocommit off behind Django's back.
    if conn.vendor == "mysql":
        raw.autocommit(False)
    elif conn.vendor == "postgresql":
        raw.autocommit = False
    else:
        raw.isolation_level = "DEFERRED"
    assert conn.resetter.snapshot(raw) != clean
    conn.close()
    assert conn.resetter.snapshot(raw) == clean  # clean while idle in the pool


def test_isolation_level_does_not_leak_to_the_next_checkout(alias):
    conn = connections[alias]
    if conn.vendor == "sqlite":
        pytest.skip("SQLite is always serializable")
    first = session_id(alias)
    if conn.vendor == "postgresql":
        from psycopg import IsolationLevel

        raw = conn.connection
        before = raw.isolation_level
        raw.isolation_level = IsolationLevel.SERIALIZABLE
        conn.close()
        assert raw.isolation_level == before
        with conn.cursor() as cur:
            cur.execute("SHOW transaction_isolation")
            assert cur.fetchone()[0] == "read committed"
    else:
        with conn.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE")
        conn.close()
        with conn.cursor() as cur:
            cur.execute("SELECT @@session.tx_isolation")
            assert cur.fetchone()[0] == "READ-COMMITTED"
    assert session_id(alias) == first


def set_statements(alias: str) -> int:
    """The server's own count of SET statements run in this session."""
    with connections[alias].cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Com_set_option'")
        return int(cur.fetchone()[1])


def test_unchanged_session_is_not_set_up_again_on_checkout(alias):
    """MySQL: Django's SET SESSION runs when the pool opens a connection and
    again only after the session was changed (the server says so)."""
    conn = connections[alias]
    if conn.vendor != "mysql":
        pytest.skip("session set-up costs a round trip on MySQL only")
    first = session_id(alias)
    conn.close()
    before = set_statements(alias)
    conn.close()
    assert set_statements(alias) == before  # checkout of a clean session: no SET
    conn.close()
    with conn.cursor() as cur:
        cur.execute("SET @connmon_probe = 1")
    conn.close()
    after = set_statements(alias)  # this checkout ran Django's set-up again
    assert after == before + 2  # SET @connmon_probe, then Django's SET SESSION
    conn.close()
    assert set_statements(alias) == after
    assert session_id(alias) == first


def test_closing_inside_atomic_discards_the_connection(alias):
    conn = connections[alias]
    first = session_id(alias)
    raw = conn.connection
    entry = entry_of(alias)
    discarded = entry.discarded
    with transaction.atomic(using=alias):
        session_id(alias)
        conn.close()
    assert conn.connection is None
    assert entry.discarded == discarded + 1
    assert raw not in [rec.dbapi_connection for rec in entry.pool._pool.queue]
    if conn.vendor != "sqlite":
        assert session_id(alias) != first


def test_pool_limits_connections_per_process(alias):
    """pool_size 3 + max_overflow 2: a sixth thread waits, then times out."""
    import threading

    from django.db import OperationalError  # noqa: F401

    entry = entry_of(alias) if registry.entries(alias) else None
    hold = threading.Event()
    got = []
    errors = []

    def worker():
        try:
            session_id(alias)
            got.append(1)
            hold.wait(10)
        except Exception as err:  # the pool timed out
            errors.append(err)
        finally:
            connections[alias].close()

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for t in threads:
        t.start()
    from cm_helpers import wait_for

    wait_for(lambda: len(got) == 5, what="five checkouts")
    entry = entry_of(alias)
    entry.pool._timeout = 0.2  # the sixth should give up quickly
    try:
        with pytest.raises(Exception, match="QueuePool limit"):
            connections[alias].ensure_connection()
    finally:
        entry.pool._timeout = 5
        hold.set()
        for t in threads:
            t.join(10)
    assert not errors
    assert pool_status(alias)[0]["checked_out"] == 0
