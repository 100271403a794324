"""The reporter thread against a real Unix-socket listener: the hello, full
and delta reports, gone pools, drops and reconnects."""
from __future__ import annotations

import gc
import logging
import os
import socket

import pytest
import sqlalchemy as sa

from client_helpers import clean_client, fake_agent, wait_until  # noqa: F401  (fixtures)
from connmon_agent import protocol
from connmon_agent.client import instrument, reporter

pytestmark = pytest.mark.usefixtures("clean_client")

INTERVAL = 0.2


def engine_for(short_tmp: str, socket_path: str, name: str = "t", **kw: object) -> tuple[sa.Engine, object]:
    engine = sa.create_engine(f"sqlite:///{short_tmp}/{name}.db", **kw)
    return engine, instrument(engine, socket_path=socket_path, interval=INTERVAL, program_name="rep-test")


def test_hello_then_full_report_then_deltas(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine, c = engine_for(short_tmp, agent.path)
    conn = engine.connect()
    wait_until(lambda: agent.reports, what="a report")
    (hello,) = agent.hellos
    assert hello["role"] == "reporter" and hello["program"] == "rep-test"
    assert hello["pid"] == os.getpid() and hello["host"] == socket.gethostname()
    assert hello["interval"] == INTERVAL
    first = agent.reports[0]
    assert first["full"] is True and first["seq"] == 0 and first["program"] == "rep-test"
    assert [p["id"] for p in first["pools"]] == [c.id]
    # once the checkout was reported, nothing changes: deltas carry no pools
    (seen,) = wait_until(lambda: next(((r["seq"],) for r in agent.all_reports()
                                       for p in r["pools"] if p.get("gauges", {}).get("checked_out") == 1), None), what="the checkout")
    # (a report racing the checkout may show it before recording its
    # version: the pool is then resent once, never skipped)
    quiet = wait_until(lambda: next((r for r in agent.all_reports() if r["seq"] > seen and not r["full"]
                                     and r["pools"] == []), None), what="a quiet delta")
    assert quiet.get("gone", []) == [] and quiet["seq"] <= seen + 2
    assert "program" not in quiet  # a delta repeats nothing unchanged
    conn.close()  # a change: the next delta carries the pool
    pool = wait_until(lambda: next((p for r in agent.all_reports() if not r["full"] for p in r["pools"]
                                    if p.get("counters", {}).get("checkins")), None), what="a delta with the checkin")
    assert pool["gauges"]["checked_out"] == 0 and pool["counters"]["checkins"] == 1
    # a full report at least every FULL_EVERY reports
    reports = wait_until(lambda: len(agent.all_reports()) > protocol.FULL_EVERY + 1 and agent.all_reports(), timeout=30, what="a second full report")
    fulls = [r["seq"] for r in reports if r["full"]]
    assert fulls[:2] == [0, protocol.FULL_EVERY]
    assert [r["seq"] for r in reports] == list(range(len(reports)))


def test_checkouts_capped_with_total_and_ages_at_send_time(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine, c = engine_for(short_tmp, agent.path, pool_size=protocol.MAX_CHECKOUTS + 20, max_overflow=0)
    conns = [engine.connect() for _ in range(protocol.MAX_CHECKOUTS + 20)]
    pool = wait_until(lambda: (p := agent.last_pool(c.id)) and p["checkouts_total"] == protocol.MAX_CHECKOUTS + 20 and p,
                      what="the pool with every checkout")
    assert len(pool["checkouts"]) == protocol.MAX_CHECKOUTS
    ages = [co["age"] for co in pool["checkouts"]]
    assert ages == sorted(ages, reverse=True) and ages[0] > 0  # oldest first
    for conn in conns:
        conn.close()


def test_gone_pool_is_reported(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    keep, kept = engine_for(short_tmp, agent.path, "keep")
    engine, c = engine_for(short_tmp, agent.path, "drop")
    with engine.connect():
        pass
    gone_id = c.id
    wait_until(lambda: agent.last_pool(gone_id), what="the pool reported")
    del engine, c
    gc.collect()
    msg = wait_until(lambda: next((r for r in agent.all_reports() if gone_id in r.get("gone", [])), None), what="gone")
    assert msg["full"] is False
    later = wait_until(lambda: next((r for r in agent.all_reports() if r["full"] and r["seq"] > msg["seq"]), None),
                       timeout=10, what="a later full report")
    assert [p["id"] for p in later["pools"]] == [kept.id]
    keep.dispose()


def test_closed_collector_is_reported_gone(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine, c = engine_for(short_tmp, agent.path)
    wait_until(lambda: agent.last_pool(c.id), what="the pool reported")
    c.close()
    wait_until(lambda: any(c.id in r.get("gone", []) for r in agent.all_reports()), what="gone")


def test_agent_absent_counts_drops_then_full_state_on_arrival(fake_agent, short_tmp: str) -> None:
    path = os.path.join(short_tmp, "later.sock")
    engine, c = engine_for(short_tmp, path)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    ch = wait_until(lambda: (r := reporter.current()) and r.channels.get(path), what="the channel")
    wait_until(lambda: ch.dropped >= 3, what="drops while nobody listens")
    agent = fake_agent("later.sock")
    first = wait_until(lambda: agent.all_reports() and agent.all_reports()[0], timeout=10, what="reports after the agent came")
    assert first["full"] is True and first["dropped"] >= 3
    assert first["pools"][0]["counters"]["checkouts"] == 1


def test_restarted_agent_is_whole_again_within_two_intervals(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine, c = engine_for(short_tmp, agent.path)
    held = engine.connect()
    wait_until(lambda: agent.reports, what="first report")
    agent.stop()  # the agent dies...
    r = reporter.current()
    wait_until(lambda: r.channels[agent.path].link is None, what="the reporter noticing")
    before = len(agent.all_reports())
    agent.start()  # ...and a new one takes its place
    # the reporter retries after 0.1-0.2 s, then sends everything at once
    first = wait_until(lambda: agent.all_reports()[before:] and agent.all_reports()[before], timeout=2 * INTERVAL + 0.5,
                       what="a full report within two intervals")
    assert first["full"] is True and first["seq"] > 0
    assert first["pools"][0]["gauges"]["checked_out"] == 1
    held.close()


def test_refusing_agent_is_retried_late_and_logged_once(fake_agent, short_tmp: str, caplog: pytest.LogCaptureFixture) -> None:
    agent = fake_agent(refuse="peer speaks protocol 9..9")
    engine, c = engine_for(short_tmp, agent.path)
    with caplog.at_level(logging.WARNING, logger="connmon"):
        wait_until(lambda: agent.hellos, what="a hello")
        ch = reporter.current().channels[agent.path]
        # refused: the link is dropped and the next attempt is far away
        wait_until(lambda: ch.link is None and ch.next_attempt - reporter.runtime.clock() > 30, what="a long wait")
    assert len(agent.hellos) == 1
    (record,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert "9..9" in record.getMessage()


def test_backoff_doubles_to_five_seconds_with_jitter() -> None:
    b = reporter.Backoff()
    delays = [b.next() for _ in range(10)]
    nominal = [min(0.1 * 2 ** i, 5.0) for i in range(10)]
    for d, n in zip(delays, nominal):
        assert 0.8 * n <= d <= 1.2 * n
    b.reset()
    assert b.next() <= 0.12
