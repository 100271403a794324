"""auto_close_db returns connections from threads and async code;
close_pool empties pools so a test database can be dropped."""
from __future__ import annotations

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from django_connmon import auto_close_db, close_pool, pool_status
from django_connmon.pools import registry


def _query(alias: str) -> None:
    with connections[alias].cursor() as cur:
        cur.execute("SELECT 1")


def checked_out(alias: str) -> int:
    return sum(st["checked_out"] for st in pool_status(alias))


def run_in_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join(10)


def test_thread_without_auto_close_db_keeps_its_connection(alias):
    before = checked_out(alias)
    run_in_thread(lambda: _query(alias))
    assert checked_out(alias) == before + 1  # the leak auto_close_db exists for
    [entry] = registry.entries(alias)
    assert entry.reclaim_dead() == 1  # taken back once the pool needs it
    assert checked_out(alias) == before


def test_decorated_function_in_a_thread_returns_its_connection(alias):
    before = checked_out(alias)

    @auto_close_db
    def work():
        _query(alias)
        assert checked_out(alias) == before + 1

    run_in_thread(work)
    assert checked_out(alias) == before


def test_connection_is_returned_when_the_function_raises(alias):
    @auto_close_db(using=alias)
    def work():
        _query(alias)
        raise ValueError("boom")

    errors = []

    def run():
        try:
            work()
        except ValueError as err:
            errors.append(err)

    before = checked_out(alias)
    run_in_thread(run)
    assert errors and checked_out(alias) == before


def test_context_manager_returns_the_blocks_connection(alias):
    before = checked_out(alias)
    with auto_close_db():
        _query(alias)
        assert checked_out(alias) == before + 1
    assert checked_out(alias) == before
    assert connections[alias].connection is None


def test_async_function_returns_its_connections(alias):
    @auto_close_db
    async def work():
        await sync_to_async(_query)(alias)
        return await sync_to_async(checked_out)(alias)

    before = checked_out(alias)
    during = asyncio.run(work())
    assert during == before + 1
    assert checked_out(alias) == before


def test_async_context_manager(alias):
    async def work():
        async with auto_close_db(using=alias):
            await sync_to_async(_query)(alias)

    before = checked_out(alias)
    asyncio.run(work())
    assert checked_out(alias) == before


def test_connection_in_an_outer_atomic_block_is_left_alone(alias):
    from django.db import transaction

    with transaction.atomic(using=alias):
        with auto_close_db():
            _query(alias)
        assert connections[alias].connection is not None


def test_close_pool_closes_idle_connections(alias):
    _query(alias)
    connections[alias].close()
    [entry] = registry.entries(alias)
    assert entry.status()["checked_in"] >= 1
    assert close_pool(alias) == 1
    assert registry.entries(alias) == []
    assert entry.pool.checkedin() == 0
    _query(alias)  # a new pool on demand
    assert len(registry.entries(alias)) == 1


@pytest.mark.parametrize("vendor", ["mysql", "postgresql"])
def test_test_database_with_pooled_connections_can_be_dropped(request, vendor):
    """create_test_db / destroy_test_db empty the pools: DROP DATABASE on
    PostgreSQL fails while any session is connected to the database."""
    request.getfixturevalue(f"{vendor}_url")
    conn = connections[vendor]
    made = request.getfixturevalue("test_databases")
    if vendor in made:  # the other tests' test database: dropped and made again on demand
        conn.creation.destroy_test_db(made.pop(vendor), verbosity=0)
    old = conn.settings_dict["NAME"]
    conn.settings_dict["TEST"]["NAME"] = "test_django_connmon_drop"
    request.addfinalizer(lambda: conn.settings_dict["TEST"].update(NAME="test_django_connmon"))
    conn.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    test_name = conn.settings_dict["NAME"]
    try:
        # Pool a few connections: the main thread's and two threads' idle ones.
        _query(vendor)
        for _ in range(2):
            run_in_thread(auto_close_db(lambda: _query(vendor)))
        assert sum(st["connections"] for st in pool_status(vendor)) >= 1
    finally:
        conn.creation.destroy_test_db(old, verbosity=0)
    other = connections.create_connection(vendor)
    try:
        with other.cursor() as cur:
            if vendor == "postgresql":
                cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [test_name])
            else:
                cur.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = %s", [test_name])
            assert cur.fetchone()[0] == 0
    finally:
        other.close()
