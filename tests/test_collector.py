"""The collector's figures after scripted sequences: exact gauges,
counters and histogram counts, on SQLite and (where configured) on real
MariaDB and PostgreSQL servers."""
from __future__ import annotations

import gc
import sys
import threading
import time

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from client_helpers import clean_client, wait_until  # noqa: F401  (fixture)
from connmon_agent import protocol
from connmon_agent.client import holder, instrument, open_checkouts
from connmon_agent.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_client")


@pytest.fixture
def absent(short_tmp: str) -> str:
    """A socket path nobody listens on: the reporter keeps dropping."""
    return f"{short_tmp}/nobody.sock"


def make(url: str, absent: str, **kw: object) -> tuple[sa.Engine, object]:
    kw.setdefault("poolclass", sa.pool.QueuePool)
    engine = sa.create_engine(url, **kw)
    return engine, instrument(engine, socket_path=absent, interval=0.5)


def figures(collector: object) -> dict:
    snap = collector.snapshot()  # type: ignore[attr-defined]
    assert snap is not None
    protocol.validate_report({"seq": 0, "full": True, "pools": [snap]})
    return snap


def test_checkout_and_checkin_counts_and_hold_histogram(db_url: str, absent: str) -> None:
    engine, c = make(db_url, absent, pool_size=5, max_overflow=5)
    conns = [engine.connect() for _ in range(3)]
    f = figures(c)
    assert f["gauges"] == {"checked_out": 3, "checked_in": 0, "connections": 3, "detached": 0, "overflow": 0, "waiters": 0}
    assert f["counters"]["checkouts"] == 3 and f["counters"]["connects"] == 3
    assert f["checkouts_total"] == 3 and len(f["checkouts"]) == 3
    assert [co["kind"] for co in f["checkouts"]] == ["thread"] * 3
    assert {co["holder"] for co in f["checkouts"]} == {threading.current_thread().name}
    assert [co["id"] for co in f["checkouts"]] == sorted(co["id"] for co in f["checkouts"])  # oldest first
    for conn in conns:
        conn.close()
    f = figures(c)
    assert f["gauges"]["checked_out"] == 0 and f["gauges"]["checked_in"] == 3 and f["gauges"]["connections"] == 3
    assert f["counters"]["checkins"] == 3 and f["counters"]["disconnects"] == 0
    assert f["hold"]["count"] == 3 and sum(f["hold"]["counts"]) == 3
    assert f["hold"]["bounds"] == sorted(f["hold"]["bounds"])
    assert f["checkouts"] == [] and f["checkouts_total"] == 0
    engine.dispose()
    f = figures(c)
    assert f["gauges"]["connections"] == 0 and f["counters"]["disconnects"] == 3


def test_hold_times_fall_in_their_buckets(monkeypatch: pytest.MonkeyPatch, short_tmp: str, absent: str) -> None:
    from connmon_agent.client import runtime

    now = [1000.0]
    monkeypatch.setattr(runtime, "clock", lambda: now[0])
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent)
    for held in (0.0005, 0.003, 0.003, 2.0, 5000.0):
        conn = engine.connect()
        now[0] += held
        conn.close()
    hold = figures(c)["hold"]
    bounds = hold["bounds"]
    expected = [0] * (len(bounds) + 1)
    for held in (0.0005, 0.003, 0.003, 2.0):
        expected[next(i for i, b in enumerate(bounds) if held <= b)] += 1
    expected[-1] += 1  # 5000 s: the overflow bucket
    assert hold["counts"] == expected
    assert hold["sum"] == pytest.approx(0.0005 + 0.003 + 0.003 + 2.0 + 5000.0)
    # ages are relative to the snapshot's clock
    conn = engine.connect()
    now[0] += 7.5
    assert figures(c)["checkouts"][0]["age"] == pytest.approx(7.5)
    conn.close()


def test_hard_invalidation_leaves_no_phantom_checked_in(db_url: str, absent: str) -> None:
    engine, c = make(db_url, absent)
    conn = engine.connect()
    conn.exec_driver_sql("select 1")
    conn.invalidate()
    f = figures(c)
    assert f["counters"]["invalidated_hard"] == 1
    assert f["gauges"]["connections"] == 0
    conn.close()  # SQLAlchemy checked the record in with dbapi_connection=None
    f = figures(c)
    assert f["gauges"] == {"checked_out": 0, "checked_in": 0, "connections": 0, "detached": 0, "overflow": 0, "waiters": 0}
    assert f["counters"]["checkouts"] == 1 and f["counters"]["checkins"] == 1
    assert f["counters"]["disconnects"] == 1
    with engine.connect() as again:  # the record reconnects
        assert again.exec_driver_sql("select 1").scalar() == 1
    f = figures(c)
    assert f["counters"]["connects"] == 2 and f["gauges"]["checked_in"] == 1 and f["gauges"]["connections"] == 1


def _server_kill(engine: sa.Engine, conn: sa.Connection) -> None:
    name = engine.dialect.name
    with engine.connect() as killer:
        if name == "mysql":
            cid = conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
            killer.exec_driver_sql(f"KILL {int(cid)}")
        else:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
            killer.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            killer.commit()


@pytest.mark.parametrize("server", ["mysql", "postgresql"])
def test_server_killed_connection_is_invalidated_and_counted(server: str, request: pytest.FixtureRequest, absent: str) -> None:
    url = request.getfixturevalue(f"{server}_url")
    engine, c = make(url, absent, pool_size=2, max_overflow=0)
    conn = engine.connect()
    conn.exec_driver_sql("select 1")
    conn.commit()
    _server_kill(engine, conn)
    time.sleep(0.05)  # let the server close it
    with pytest.raises(sa_exc.DBAPIError) as info:
        conn.exec_driver_sql("select 1")
    assert info.value.connection_invalidated
    conn.close()
    f = figures(c)
    assert f["counters"]["invalidated_hard"] == 1
    # two connections were made (the killer too); the killed one is gone
    assert f["counters"]["connects"] == 2 and f["counters"]["disconnects"] == 1
    assert f["gauges"] == {"checked_out": 0, "checked_in": 1, "connections": 1, "detached": 0, "overflow": 0, "waiters": 0}
    engine.dispose()


def test_soft_invalidation_recycles_on_next_checkout(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent)
    raw = engine.raw_connection()
    time.sleep(0.02)  # SQLAlchemy compares time.time() stamps
    raw.invalidate(soft=True)
    f = figures(c)
    assert f["counters"]["invalidated_soft"] == 1 and f["gauges"]["connections"] == 1
    raw.close()
    raw = engine.raw_connection()  # recycled: closed and reconnected
    f = figures(c)
    assert f["counters"]["connects"] == 2 and f["counters"]["disconnects"] == 1
    assert f["gauges"]["connections"] == 1 and f["gauges"]["checked_out"] == 1
    raw.close()


def test_detach_moves_the_connection_to_detached(db_url: str, absent: str) -> None:
    engine, c = make(db_url, absent)
    raw = engine.raw_connection()
    raw.detach()
    f = figures(c)
    assert f["gauges"] == {"checked_out": 0, "checked_in": 0, "connections": 0, "detached": 1, "overflow": 0, "waiters": 0}
    raw.close()  # close_detached
    f = figures(c)
    assert f["gauges"]["detached"] == 0 and f["counters"]["disconnects"] == 1
    with engine.connect() as conn:  # the emptied record reconnects
        conn.exec_driver_sql("select 1")
    f = figures(c)
    assert f["gauges"] == {"checked_out": 0, "checked_in": 1, "connections": 1, "detached": 0, "overflow": 0, "waiters": 0}
    engine.dispose()


def test_dispose_follows_the_new_pool_and_forgets_the_old_one(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent, pool_size=3)
    held = engine.connect()
    idle = engine.connect()
    idle.close()
    engine.dispose()  # closes the idle one; the held one stays open
    f = figures(c)
    assert f["gauges"]["connections"] == 1 and f["gauges"]["checked_out"] == 1
    with engine.connect() as fresh:  # from the new pool: still counted
        fresh.exec_driver_sql("select 1")
        f = figures(c)
        assert f["gauges"]["checked_out"] == 2 and f["counters"]["checkouts"] == 3
    held.close()  # returns to the old pool, which nothing references any more
    del held
    gc.collect()
    f = figures(c)
    assert f["gauges"]["checked_out"] == 0
    assert f["gauges"]["connections"] == 1  # the new pool's; the old pool's went with it
    assert f["counters"]["connects"] == 3 and f["counters"]["disconnects"] == 2


def test_overflow_gauge(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent, pool_size=1, max_overflow=2)
    conns = [engine.connect() for _ in range(3)]
    f = figures(c)
    assert f["gauges"]["overflow"] == 2 and f["gauges"]["connections"] == 3
    assert f["config"] == {"class": "QueuePool", "size": 1, "max_overflow": 2, "timeout": 30.0, "recycle": -1, "pre_ping": False}
    for conn in conns:
        conn.close()
    f = figures(c)  # overflow connections are closed on return
    assert f["gauges"]["overflow"] == 0 and f["gauges"]["connections"] == 1 and f["counters"]["disconnects"] == 2


def test_checkout_timeout_and_waiters(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent, pool_size=1, max_overflow=0, pool_timeout=0.1)
    held = engine.connect()
    with pytest.raises(sa_exc.TimeoutError):
        engine.connect()
    f = figures(c)
    assert f["counters"]["timeouts"] == 1 and f["counters"]["checkouts"] == 1
    assert f["gauges"]["checked_out"] == 1
    # a thread waiting for the pool is a waiter
    engine2, c2 = make(f"sqlite:///{short_tmp}/t2.db", absent, pool_size=1, max_overflow=0, pool_timeout=30)
    held2 = engine2.connect()
    got = threading.Event()

    def wait_for_conn() -> None:
        with engine2.connect():
            got.set()

    t = threading.Thread(target=wait_for_conn)
    t.start()
    wait_until(lambda: figures(c2)["gauges"]["waiters"] == 1, what="one waiter")
    held2.close()
    t.join(5)
    assert got.is_set()
    f2 = figures(c2)
    assert f2["gauges"]["waiters"] == 0 and f2["counters"]["checkouts"] == 2
    assert f2["wait"]["max"] > 0 and f2["wait"]["sum"] >= f2["wait"]["max"]
    held.close()


def test_transactions_commits_rollbacks(db_url: str, absent: str) -> None:
    engine, c = make(db_url, absent)
    for _ in range(3):  # connect/close without a transaction: the pool's
        engine.connect().close()  # reset-on-return is not a rollback
    assert figures(c)["counters"]["rollbacks"] == 0
    with engine.begin() as conn:
        conn.exec_driver_sql("select 1")
    with engine.connect() as conn:
        conn.exec_driver_sql("select 1")
        conn.rollback()
        conn.exec_driver_sql("select 1")
        conn.commit()
        conn.exec_driver_sql("select 1")
    # the last one rolled back at close
    counters = figures(c)["counters"]
    assert (counters["transactions"], counters["commits"], counters["rollbacks"]) == (4, 2, 2)
    # engines made by execution_options() share the pool and the counts
    opt = engine.execution_options(isolation_level="SERIALIZABLE" if engine.dialect.name != "sqlite" else "SERIALIZABLE")
    with opt.begin() as conn:
        conn.exec_driver_sql("select 1")
    counters = figures(c)["counters"]
    assert (counters["transactions"], counters["commits"]) == (5, 3)
    # and the ORM's sessions too
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        session.execute(sa.text("select 1"))
        session.commit()
    assert figures(c)["counters"]["commits"] == 4
    engine.dispose()


def test_holders_name_checkouts_and_nest(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent)
    with holder("GET /orders") as request:
        outer = engine.connect()
        with holder("send-mail", kind="task") as task:
            inner = engine.connect()
            assert [co.holder for co in task.open_checkouts()] == ["send-mail"]
        names = [(co.holder, co.kind) for co in request.open_checkouts()]
        assert names == [("GET /orders", "request"), ("send-mail", "task")]
        bare = engine.connect()  # the holder is back to the request
    f = figures(c)
    assert [(co["holder"], co["kind"]) for co in f["checkouts"]] == [
        ("GET /orders", "request"), ("send-mail", "task"), ("GET /orders", "request")]
    assert all(co["thread"] == threading.current_thread().name for co in f["checkouts"])
    inner.close()
    assert [co.holder for co in request.open_checkouts()] == ["GET /orders", "GET /orders"]
    assert task.open_checkouts() == []
    outer.close()
    bare.close()
    assert request.open_checkouts() == [] and open_checkouts() == []
    engine.dispose()


def test_threads_inherit_a_holder_only_when_given_it(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent)
    release = threading.Event()
    taken = threading.Barrier(3)

    def work() -> None:
        conn = engine.connect()
        taken.wait(5)
        release.wait(5)
        conn.close()

    with holder("POST /import") as h:
        bound = threading.Thread(target=h.bind(work), name="bound")

        def adopting() -> None:
            with h.adopt():
                work()

        adopted = threading.Thread(target=adopting, name="adopted")
        plain = threading.Thread(target=work, name="plain")
        for t in (bound, adopted):
            t.start()
        taken.wait(5)
        taken.reset()
        leaked = h.open_checkouts()
    assert sorted(co.thread for co in leaked) == ["adopted", "bound"]
    assert {co.holder for co in leaked} == {"POST /import"}
    taken = threading.Barrier(2)
    plain.start()
    taken.wait(5)
    assert sorted(co.thread for co in h.open_checkouts()) == ["adopted", "bound"]
    assert {(co.holder, co.kind) for co in open_checkouts() if co.thread == "plain"} == {("plain", "thread")}
    release.set()
    for t in (bound, adopted, plain):
        t.join(5)
    assert h.open_checkouts() == []
    engine.dispose()


def test_a_thread_outliving_its_request_takes_new_checkouts_as_its_own(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/o.db", absent)
    during, after, done = threading.Event(), threading.Event(), threading.Event()
    names: list[tuple[str, str]] = []

    def work() -> None:
        with engine.connect():
            names.extend((co.holder, co.kind) for co in open_checkouts() if co.thread == "worker")
        during.set()
        after.wait(5)
        with engine.connect():
            names.extend((co.holder, co.kind) for co in open_checkouts() if co.thread == "worker")
        done.set()

    with holder("GET /report") as h:
        t = threading.Thread(target=h.bind(work), name="worker")
        t.start()
        during.wait(5)
    assert h.ended
    after.set()
    done.wait(5)
    t.join(5)
    # during the request the thread's checkout was the request's; after it,
    # the thread's own (a finished request holds nothing new)
    assert names == [("GET /report", "request"), ("worker", "thread")]
    engine.dispose()


def test_counts_are_exact_under_threads(db_url: str, absent: str) -> None:
    engine, c = make(db_url, absent, pool_size=4, max_overflow=0, pool_timeout=30)
    threads, per = 8, 50

    def work() -> None:
        for _ in range(per):
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")

    ts = [threading.Thread(target=work) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    f = figures(c)
    n = threads * per
    assert f["counters"]["checkouts"] == n and f["counters"]["checkins"] == n
    assert f["counters"]["rollbacks"] == n and f["counters"]["transactions"] == n
    assert f["hold"]["count"] == n
    assert f["gauges"]["checked_out"] == 0 and f["gauges"]["connections"] == f["counters"]["connects"] <= 4
    engine.dispose()


def test_where_points_at_the_application_frame(short_tmp: str, absent: str) -> None:
    engine = sa.create_engine(f"sqlite:///{short_tmp}/t.db")
    c = instrument(engine, socket_path=absent, where=True)
    conn = engine.connect(); line = sys._getframe().f_lineno  # noqa: E702
    (co,) = figures(c)["checkouts"]
    # shown relative to its sys.path entry (pytest puts tests/ there)
    assert co["where"] == f"test_collector.py:{line} in test_where_points_at_the_application_frame"
    assert open_checkouts()[0].where == co["where"]
    conn.close()
    off_engine, off = make(f"sqlite:///{short_tmp}/t2.db", absent)
    with off_engine.connect():
        assert figures(off)["checkouts"][0]["where"] is None


def test_target_and_name_never_show_the_password(absent: str) -> None:
    engine = sa.create_engine("postgresql+psycopg2://nova:s3cret@db.example/nova?sslmode=disable")
    c = instrument(engine, socket_path=absent)
    assert c.target == "postgresql+psycopg2://nova@db.example:5432/nova"
    assert c.name == "Engine(postgresql+psycopg2://nova@db.example/nova)"
    assert "s3cret" not in repr(figures(c))


def test_bare_pool_with_url_and_recreate(short_tmp: str, absent: str) -> None:
    import sqlite3

    path = f"{short_tmp}/bare.db"
    pool = sa.pool.QueuePool(lambda: sqlite3.connect(path, check_same_thread=False), pool_size=2)
    c = instrument(pool, url=f"sqlite:///{path}", socket_path=absent, name="django:default")
    assert c.name == "django:default" and c.target == f"sqlite:///{path}"
    raw = pool.connect()
    assert figures(c)["gauges"]["checked_out"] == 1
    raw.close()
    new = pool.recreate()  # SQLAlchemy copies our listeners; instrument() finds them
    assert instrument(new, url=f"sqlite:///{path}", socket_path=absent) is c
    raw = new.connect()
    f = figures(c)
    assert f["counters"]["checkouts"] == 2 and f["gauges"]["checked_out"] == 1
    raw.close()
    assert instrument(pool) is c  # the same target again: the same collector


def test_close_stops_watching(short_tmp: str, absent: str) -> None:
    engine, c = make(f"sqlite:///{short_tmp}/t.db", absent)
    c.close()
    assert c.snapshot() is None
    assert "_do_get" not in engine.pool.__dict__ and "_connection_cls" not in engine.__dict__
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1


def test_instrument_rejects_bad_arguments(short_tmp: str) -> None:
    engine = sa.create_engine(f"sqlite:///{short_tmp}/t.db")
    with pytest.raises(ConfigError, match="Engine or Pool"):
        instrument(object())
    with pytest.raises(ConfigError, match="interval"):
        instrument(engine, interval=0)
    with pytest.raises(ConfigError, match="addr"):
        instrument(engine, addr="host-without-port")
    with pytest.raises(ConfigError, match="holder kind"):
        holder("x", kind="job")
