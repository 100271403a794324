"""The client is a guest in the application: it never raises into it,
never blocks it on an absent or hung agent, and keeps its memory bounded."""
from __future__ import annotations

import logging
import os

import pytest
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from client_helpers import clean_client, fake_agent, wait_until  # noqa: F401  (fixtures)
from connmon_agent import protocol
from connmon_agent.client import (collector, frames, guard, holder, hooks, instrument, reporter, runtime, state,
                                  transport)

pytestmark = pytest.mark.usefixtures("clean_client")


class Boom(Exception):
    pass


def boom(*args: object, **kwargs: object) -> None:
    raise Boom("connmon internals failing on purpose")


#: Everything the hooks and the reporter thread call, made to fail.
INTERNALS = [
    (runtime, "clock"),
    (frames, "capture"),
    (state.PoolState, "track_open"),
    (state.PoolState, "forget_open"),
    (state.PoolState, "end_hold"),
    (state.PoolState, "snapshot"),
    (collector.PoolCollector, "_locked"),
    (collector.PoolCollector, "_mine"),
    (collector.PoolCollector, "_forked"),
    (collector.PoolCollector, "_timed_out"),
    (collector.PoolCollector, "_count"),
    (collector.PoolCollector, "_see_pool"),
    (collector.PoolCollector, "checkouts"),
    (collector.PoolCollector, "snapshot"),
    (hooks, "checkout_ids"),  # next() on it fails
    (reporter.Reporter, "tick"),
    (reporter.Channel, "tick"),
    (reporter.Channel, "build"),
    (transport.AgentLink, "open"),
    (transport.AgentLink, "poll"),
    (protocol, "encode"),
]


def app_workload(engine: sa.Engine) -> list[object]:
    """What an application does; returns its query results."""
    results: list[object] = []
    with engine.connect() as conn:
        results.append(conn.exec_driver_sql("select 1").scalar())
        conn.commit()
        results.append(conn.exec_driver_sql("select 2").scalar())
        conn.rollback()
    with engine.begin() as conn:
        conn.exec_driver_sql("create table if not exists t (x integer)")
        conn.exec_driver_sql("insert into t values (7)")
    with holder("GET /x") as h:
        conn = engine.connect()
        results.append(conn.exec_driver_sql("select count(*) from t").scalar() >= 1)
        results.append(isinstance(h.open_checkouts(), list))
        conn.invalidate()
        conn.close()
    raw = engine.raw_connection()
    raw.invalidate(soft=True)
    raw.close()
    raw = engine.raw_connection()
    raw.detach()
    raw.close()
    engine.dispose()
    with engine.connect() as conn:
        results.append(conn.exec_driver_sql("select 3").scalar())
    held = engine.connect()
    with pytest.raises(sa_exc.TimeoutError):  # the pool's own error, unchanged
        engine.connect()
    held.close()
    return results


EXPECTED = [1, 2, True, True, 3]


def forked_workload(engine: sa.Engine) -> int:
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            engine.dispose(close=False)
            with engine.connect() as conn:
                code = 0 if conn.exec_driver_sql("select 5").scalar() == 5 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_failing_internals_never_reach_the_application(
    fake_agent, short_tmp: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    agent = fake_agent()
    engine = sa.create_engine(f"sqlite:///{short_tmp}/g.db", pool_size=1, max_overflow=0, pool_timeout=0.05)
    c = instrument(engine, socket_path=agent.path, interval=0.05, where=True)
    wait_until(lambda: agent.reports, what="reporting before the failures")
    before = guard.internal_errors
    for obj, name in INTERNALS:
        monkeypatch.setattr(obj, name, boom)
    caplog.set_level(logging.WARNING, logger="connmon")
    assert app_workload(engine) == EXPECTED
    assert forked_workload(engine) == 0
    wait_until(lambda: guard.internal_errors > before + 20, what="failures counted")
    reporter.current().wake.set()
    assert instrument(sa.create_engine(f"sqlite:///{short_tmp}/g2.db"), socket_path=agent.path) is not None
    # logged at most once a minute (here the clock itself fails: not at all), never printed
    assert len([r for r in caplog.records if r.name == "connmon"]) <= 1
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    monkeypatch.undo()
    assert app_workload(engine) == EXPECTED  # and it all still works afterwards
    assert c.snapshot() is not None


def test_failures_are_logged_at_most_once_a_minute(short_tmp: str, monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    now = [5000.0]
    monkeypatch.setattr(runtime, "clock", lambda: now[0])
    monkeypatch.setattr(guard, "_last_logged", None)
    monkeypatch.setattr(state.PoolState, "end_hold", boom)
    monkeypatch.setattr(collector.PoolCollector, "_count", boom)
    engine = sa.create_engine(f"sqlite:///{short_tmp}/g.db")
    instrument(engine, socket_path=f"{short_tmp}/none.sock")
    caplog.set_level(logging.WARNING, logger="connmon")
    for _ in range(50):
        with engine.begin() as conn:
            conn.exec_driver_sql("select 1")
    logged = [r for r in caplog.records if r.name == "connmon"]
    assert len(logged) == 1 and "internal error" in logged[0].getMessage()
    now[0] += 61
    with engine.begin():
        pass
    assert len([r for r in caplog.records if r.name == "connmon"]) == 2


def test_absent_agent_costs_nothing_but_drops(short_tmp: str) -> None:
    path = f"{short_tmp}/absent.sock"
    engine = sa.create_engine(f"sqlite:///{short_tmp}/g.db")
    c = instrument(engine, socket_path=path, interval=0.05)
    errors = guard.internal_errors
    for _ in range(2000):
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
    ch = wait_until(lambda: (r := reporter.current()) and r.channels.get(path), what="the channel")
    wait_until(lambda: ch.dropped >= 5, what="drops counted")
    assert ch.link is None and guard.internal_errors == errors
    assert c.snapshot()["counters"]["checkouts"] == 2000


def test_hung_agent_never_blocks_the_application_and_memory_stays_bounded(fake_agent, short_tmp: str) -> None:
    agent = fake_agent(reading=False)  # answers the hello, then never reads again (SIGSTOP)
    engine = sa.create_engine(f"sqlite:///{short_tmp}/g.db", pool_size=protocol.MAX_CHECKOUTS, max_overflow=0)
    instrument(engine, socket_path=agent.path, interval=0.05, where=True)
    held = [engine.connect() for _ in range(protocol.MAX_CHECKOUTS - 1)]  # big reports fill the socket fast
    ch = wait_until(lambda: (r := reporter.current()) and r.channels.get(agent.path), what="the channel")
    wait_until(lambda: ch.link is not None and ch.link.state == "ready", what="the welcome")
    wait_until(lambda: ch.dropped >= 3, timeout=10, what="reports dropped once the socket is full")
    for _ in range(3000):  # the application goes on, unaffected
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
    dropped = ch.dropped
    wait_until(lambda: ch.dropped > dropped, what="still dropping, not queueing")
    # one frame at most waits: memory does not grow with the reports not sent
    assert ch.link is not None and len(ch.link.pending) <= protocol.MAX_REPORT_FRAME + protocol.HEADER_SIZE
    for conn in held:
        conn.close()
