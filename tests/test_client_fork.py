"""Fork: a child reports only its own pools, from zero, on its own socket,
whether the fork hooks ran (os.fork, multiprocessing) or not (a pid
provider that changes, as under uWSGI without py-call-osafterfork)."""
from __future__ import annotations

import multiprocessing
import os
import time

import pytest
import sqlalchemy as sa

from client_helpers import clean_client, fake_agent, wait_until  # noqa: F401  (fixtures)
from connmon_agent.client import instrument, reporter, runtime

pytestmark = pytest.mark.usefixtures("clean_client")

INTERVAL = 0.2


def setup_parent(fake_agent, short_tmp: str) -> tuple[object, sa.Engine, object, sa.Connection]:
    agent = fake_agent()
    engine = sa.create_engine(f"sqlite:///{short_tmp}/f.db", pool_size=5)
    c = instrument(engine, socket_path=agent.path, interval=INTERVAL, program_name="forker")
    with engine.connect():
        pass
    held = engine.connect()
    wait_until(lambda: (p := agent.last_pool(c.id, os.getpid())) and p["counters"]["checkouts"] == 2, what="parent report")
    return agent, engine, c, held


def child_uses_engine(engine: sa.Engine, hold: float) -> int:
    """In the child: a pool of its own, one checkout, held a while."""
    engine.dispose(close=False)  # never close the parent's connections
    conn = engine.connect()
    ok = conn.exec_driver_sql("select 41 + 1").scalar() == 42
    time.sleep(hold)
    conn.close()
    return 0 if ok else 3


def test_forked_child_reports_its_own_pool_from_zero(fake_agent, short_tmp: str) -> None:
    agent, engine, c, held = setup_parent(fake_agent, short_tmp)
    parent_conn = next(h["_conn"] for h in agent.hellos if h["pid"] == os.getpid())
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            code = child_uses_engine(engine, hold=1.5)
        finally:
            os._exit(code)
    try:
        pool = wait_until(lambda: (p := agent.last_pool(c.id, pid)) and p["gauges"]["checked_out"] == 1 and p,
                          what="the child's checkout reported")
        hello = next(h for h in agent.hellos if h["pid"] == pid)
        assert hello["_conn"] != parent_conn  # its own socket
        assert pool["counters"]["checkouts"] == 1 and pool["counters"]["connects"] == 1
        assert pool["gauges"]["checked_out"] == 1 and pool["gauges"]["connections"] == 1
        child_reports = [r for r in agent.all_reports() if r["_conn"] == hello["_conn"]]
        assert {p["id"] for r in child_reports for p in r["pools"]} == {c.id}  # only what it used
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the parent's link and counts are untouched
    n = len(agent.all_reports())
    held.close()
    pool = wait_until(lambda: len(agent.all_reports()) > n and (p := agent.last_pool(c.id, os.getpid()))
                      and p["counters"]["checkins"] == 2 and p, what="parent reporting on")
    assert pool["counters"]["checkouts"] == 2
    assert agent.all_reports()[-1]["_conn"] == parent_conn
    assert held.closed


def test_child_that_uses_no_pool_stays_silent(fake_agent, short_tmp: str) -> None:
    agent, engine, c, held = setup_parent(fake_agent, short_tmp)
    pid = os.fork()
    if pid == 0:
        time.sleep(4 * INTERVAL)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [h["pid"] for h in agent.hellos] == [os.getpid()]
    held.close()


def _mp_child(engine: sa.Engine, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put((os.getpid(), child_uses_engine(engine, hold=1.0)))


def test_multiprocessing_fork_child(fake_agent, short_tmp: str) -> None:
    agent, engine, c, held = setup_parent(fake_agent, short_tmp)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_mp_child, args=(engine, queue))
    proc.start()
    try:
        child_pid, code = queue.get(timeout=10)
        assert code == 0
        pool = wait_until(lambda: (p := agent.last_pool(c.id, child_pid)) and p["counters"]["checkouts"] and p,
                          what="the child's report")
        assert pool["counters"]["checkouts"] == 1
    finally:
        proc.join(10)
        queue.close()
        queue.join_thread()
    assert proc.exitcode == 0
    held.close()


def test_fork_without_hooks_is_caught_by_the_pid_check(fake_agent, short_tmp: str, monkeypatch: pytest.MonkeyPatch) -> None:
    agent, engine, c, held = setup_parent(fake_agent, short_tmp)
    parent = reporter.current()
    fake_pid = os.getpid() + 1_000_000
    monkeypatch.setattr(runtime, "getpid", lambda: fake_pid)  # a fork nobody told us about
    assert c.snapshot() is None  # the pool is the parent's until used here
    engine.dispose(close=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    snap = c.snapshot()
    assert snap["counters"]["checkouts"] == 1 and snap["counters"]["checkins"] == 1  # from zero
    pool = wait_until(lambda: agent.last_pool(c.id, fake_pid), what="a report from the 'child'")
    assert pool["counters"]["checkouts"] == 1
    assert reporter.current() is not parent and parent.stopping  # its own reporter
    held.close()  # a checkout from "before the fork": ignored, never negative
    assert c.snapshot()["gauges"]["checked_out"] == 0
