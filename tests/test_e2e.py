"""End to end: the ``?plugin=connmon`` URL in real processes, a real agent
process, real SQLite / MariaDB / PostgreSQL, and the server's own count."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from e2e_helpers import plugin_url, process_rows, send, server_connection_count, spawn_holder

INTERVAL = 0.2


def totals(proc: dict) -> tuple[int, int, int]:
    g = proc["gauges"]
    return g["connections"], g["checked_out"], g["checked_in"]


def test_counts_exact_and_equal_to_the_servers_own_count(agent, scripts, db_url):
    url = plugin_url(db_url, agent.socket, "e2e-counts", INTERVAL)
    # (hold, release): each process opens `hold` connections and returns `release`.
    plan = [(3, 1), (2, 0), (4, 4)]
    procs = []
    for hold, release in plan:
        p, info = spawn_holder(scripts, url, hold, release)
        procs.append((p, info, hold, release))
    pids = {info["pid"] for _, info, _, _ in procs}

    def all_reported(state):
        rows = process_rows(state, pids)
        return len(rows) == len(pids) and all(
            totals(rows[info["pid"]]) == (hold, hold - release, release) for _, info, hold, release in procs
        )

    state = agent.wait_state(all_reported, timeout=5, what="every process's exact counts")
    rows = process_rows(state, pids)
    for _, info, hold, release in procs:
        row = rows[info["pid"]]
        assert row["program"] == "e2e-counts"
        assert row["pools"] and row["pools"][0]["counters"]["checkouts"] == hold
        assert row["pools"][0]["counters"]["connects"] == hold
        assert "password" not in json.dumps(row)
    program = [r for r in state["programs"] if r["program"] == "e2e-counts"]
    assert len(program) == 1
    assert program[0]["processes"] == 3 and program[0]["pools"] == 3
    assert program[0]["gauges"]["connections"] == 9
    assert program[0]["gauges"]["checked_out"] == 4

    if not db_url.startswith("sqlite"):
        assert server_connection_count(db_url, pids) == sum(hold for hold, _ in plan)
        # server session ids are distinct: no connection is shared
        ids = [i for _, info, _, _ in procs for i in info["ids"]]
        assert len(set(ids)) == len(ids)
    for p, *_ in procs:
        send(p, "quit")


def test_forked_children_report_their_own_pools(agent, scripts, db_url):
    url = plugin_url(db_url, agent.socket, "e2e-fork", INTERVAL)
    parent, info = spawn_holder(scripts, url, 2, 0)
    send(parent, "fork 2")
    children = [json.loads(parent.stdout.readline()) for _ in range(2)]
    pids = {info["pid"]} | {c["pid"] for c in children}
    assert len(pids) == 3

    def right(state):
        rows = process_rows(state, pids)
        return (
            len(rows) == 3
            and totals(rows[info["pid"]]) == (2, 2, 0)
            and all(totals(rows[c["pid"]]) == (1, 1, 0) for c in children)
        )

    state = agent.wait_state(right, timeout=5, what="parent 2 and each child 1 connection")
    for c in children:
        # a child counts from zero: its counters hold only its own checkout
        assert process_rows(state, pids)[c["pid"]]["counters"]["checkouts"] == 1
    if not db_url.startswith("sqlite"):
        ids = info["ids"] + [i for c in children for i in c["ids"]]
        assert len(set(ids)) == 4, f"a connection is shared between processes: {ids}"
        assert server_connection_count(db_url, pids) == 4
    send(parent, "check")
    assert json.loads(parent.stdout.readline()) == {"check": [1, 1]}
    send(parent, "quit")
    parent.wait(10)


APP_UNDER_FIRE = r"""
import os, sys, threading, time
import sqlalchemy as sa
url, seconds = sys.argv[1], float(sys.argv[2])
engine = sa.create_engine(url, pool_size=3, max_overflow=2)
errors, ops = [], [0]
held = engine.connect()     # one connection held throughout
def work():
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            with engine.connect() as c:
                assert c.exec_driver_sql("SELECT 1").scalar() == 1
            ops[0] += 1
        except Exception as e:
            errors.append(repr(e))
print("started", flush=True)
ts = [threading.Thread(target=work) for _ in range(2)]
[t.start() for t in ts]
[t.join() for t in ts]
print(f"ops={ops[0]} errors={len(errors)} {errors[:3]}", flush=True)
sys.stdin.readline()
"""


def test_agent_sigkill_and_restart_app_unaffected_state_whole_again(agent, scripts, short_tmp):
    interval = 0.5
    url = plugin_url(f"sqlite:///{short_tmp}/k.db", agent.socket, "e2e-restart", interval)
    p = scripts.spawn(APP_UNDER_FIRE, url, "4")
    assert p.stdout.readline().strip() == "started"
    agent.wait_state(lambda s: process_rows(s, {p.pid}), what="the app reported")

    agent.kill()
    agent.start()
    # Whole again within two intervals of the restarted agent being ready.
    state = agent.wait_state(
        lambda s: p.pid in process_rows(s, {p.pid})
        and process_rows(s, {p.pid})[p.pid]["gauges"]["checked_out"] >= 1,
        timeout=2 * interval + 0.5,
        what="state whole again after restart",
    )
    row = process_rows(state, {p.pid})[p.pid]
    assert row["program"] == "e2e-restart"
    # losing the agent is not a failure of connmon's own code
    assert row["internal_errors"] == 0
    line = p.stdout.readline()
    assert " errors=0 " in line, line
    send(p, "")


def test_agent_stopped_with_sigstop_does_not_block_the_app(agent, scripts, short_tmp):
    url = plugin_url(f"sqlite:///{short_tmp}/s.db", agent.socket, "e2e-sigstop", 0.1)
    p = scripts.spawn(APP_UNDER_FIRE, url, "3")
    assert p.stdout.readline().strip() == "started"
    agent.signal(signal.SIGSTOP)
    try:
        # The app finishes its 3 s of work while the agent is frozen (it
        # would hang here if a send blocked): its result line arrives.
        out = p.stdout.readline()
    finally:
        agent.signal(signal.SIGCONT)
    assert " errors=0 " in out, out
    assert int(out.split()[0].split("=")[1]) > 100
    # and reporting resumes once the agent runs again
    agent.wait_state(lambda s: process_rows(s, {p.pid}), what="reports resume after SIGCONT")
    send(p, "")


def test_reporting_process_killed_disappears_within_two_seconds(agent, scripts, db_url):
    url = plugin_url(db_url, agent.socket, "e2e-kill", INTERVAL)
    p, info = spawn_holder(scripts, url, 2, 1)
    agent.wait_state(lambda s: process_rows(s, {info["pid"]}), what="the process reported")
    p.kill()
    p.wait(5)
    agent.wait_state(lambda s: not process_rows(s, {info["pid"]}), timeout=2.0, what="the killed process dropped")


def test_bad_socket_path_leaves_the_app_working(scripts, short_tmp):
    url = plugin_url(f"sqlite:///{short_tmp}/b.db", "/nonexistent/dir/agent.sock", "e2e-nosock", 0.1)
    p = scripts.spawn(APP_UNDER_FIRE, url, "0.5")
    assert p.stdout.readline().strip() == "started"
    out = p.stdout.readline()
    assert " errors=0 " in out, out + p.stderr.read()
    send(p, "")
    assert p.wait(10) == 0
    assert "Traceback" not in p.stderr.read()


def test_agent_refuses_a_socket_in_a_missing_unwritable_place(short_tmp):
    bad = "/proc/connmon-no/agent.sock"
    r = subprocess.run(
        [sys.executable, "-m", "connmon_agent", "start", "--socket", bad],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode != 0
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "/proc/connmon-no" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_url_parameter_errors_name_the_parameter(short_tmp):
    code = (
        "import sqlalchemy as sa, sys\n"
        "try:\n"
        "    sa.create_engine(sys.argv[1])\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    for param, word in [
        ("connmon_interval=abc", "connmon_interval"),
        ("connmon_interval=-1", "connmon_interval"),
        ("connmon_bogus=1", "connmon_bogus"),
        ("connmon_addr=nohost", "connmon_addr"),
    ]:
        r = subprocess.run(
            [sys.executable, "-c", code, f"sqlite:///{short_tmp}/u.db?plugin=connmon&{param}"],
            capture_output=True, text=True, timeout=30,
        )
        assert word in r.stdout and "ConfigError" in r.stdout, (param, r.stdout, r.stderr)


def test_driver_suffix_form_reports_like_the_plugin(agent, scripts, short_tmp):
    from urllib.parse import quote

    url = (
        f"sqlite+pysqlite_connmon:///{short_tmp}/d.db?connmon_socket={quote(agent.socket, safe='')}"
        f"&connmon_program_name=e2e-suffix&connmon_interval={INTERVAL}"
    )
    p, info = spawn_holder(scripts, url, 2, 1)
    state = agent.wait_state(
        lambda s: process_rows(s, {info["pid"]}) and totals(process_rows(s, {info["pid"]})[info["pid"]]) == (2, 1, 1),
        what="suffix-form process reported",
    )
    assert process_rows(state, {info["pid"]})[info["pid"]]["program"] == "e2e-suffix"
    send(p, "quit")


def test_no_process_of_a_test_outlives_it():
    """Guard: the fixtures above must not leak agents into later tests."""
    me = os.getpid()
    import psutil

    leftovers = [
        c for c in psutil.Process(me).children(recursive=True)
        if "connmon_agent" in " ".join(c.cmdline())
    ]
    assert not leftovers, leftovers


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_agent_serves_on_either_event_loop(agent_factory, scripts, short_tmp, monkeypatch, loop):
    # uvloop is used when installed; asyncio's own loop must work as well
    monkeypatch.setenv("CONNMON_AGENT_LOOP", loop)
    a = agent_factory()
    url = plugin_url(f"sqlite:///{short_tmp}/l.db", a.socket, f"e2e-{loop}", INTERVAL)
    p, info = spawn_holder(scripts, url, 3, 1)
    a.wait_state(
        lambda s: (rows := process_rows(s, {info["pid"]})) and totals(rows[info["pid"]]) == (3, 2, 1),
        what=f"exact counts through an agent on {loop}",
    )
    send(p, "quit")


BROKEN_INSIDE = r"""
import sys
import sqlalchemy as sa
from connmon_agent.client import frames

def broken(*a, **k):
    raise RuntimeError("connmon bug")

frames.capture = broken          # connmon's own frame capture fails on every checkout
engine = sa.create_engine(sys.argv[1])
held = engine.connect()
for _ in range(5):
    with engine.connect() as c:
        assert c.exec_driver_sql("SELECT 1").scalar() == 1
print("ok", flush=True)
sys.stdin.readline()
"""


def test_failures_inside_the_client_are_counted_and_shown_not_raised(agent, scripts, short_tmp):
    url = plugin_url(f"sqlite:///{short_tmp}/x.db", agent.socket, "e2e-broken", INTERVAL) + "&connmon_where=on"
    p = scripts.spawn(BROKEN_INSIDE, url)
    assert p.stdout.readline().strip() == "ok", p.stderr.read()
    state = agent.wait_state(
        lambda s: (rows := process_rows(s, {p.pid})) and rows[p.pid]["internal_errors"] >= 6,
        what="the client's internal errors reported",
    )
    # the checkouts are still counted exactly
    assert totals(process_rows(state, {p.pid})[p.pid]) == (2, 1, 1)
    send(p, "")
