"""``connmon-agent status`` and the CLI's error handling, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from agent_reporters import RawClient, pool
from connmon_agent import protocol

AGENT = [sys.executable, "-m", "connmon_agent"]

TOP_KEYS = {"schema", "generated_at", "agent", "totals", "hosts", "programs", "databases", "processes"}
ROLLUP_KEYS = {"processes", "pools", "capacity", "gauges", "counters", "longest_checkout"}
AGENT_KEYS = {"host", "pid", "version", "socket", "uptime", "stats"}
STATS_KEYS = {"clients", "reports", "bad_frames", "rejected", "dropped_by_clients"}


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=30, env=env)


def populate(scripts, agent) -> RawClient:
    c = RawClient(scripts).connect(agent.socket)
    assert c.hello("reporter", program="nova-api")["t"] == "welcome"
    c.report([
        pool("1", checked_out=2, checked_in=1, held=[
            {"id": 1, "age": 4.0, "holder": "GET /servers", "kind": "request", "where": "api.py:10 in show"},
            {"id": 2, "age": 0.5, "holder": "worker-3", "kind": "thread", "where": None}]),
        pool("2", target="sqlite:///x.db", name="Engine(sqlite:///x.db)", cls="NullPool", size=None, max_overflow=None),
    ], dropped=3)
    agent.wait_state(lambda s: s["totals"]["pools"] == 2, what="populated")
    return c


def check_schema(state: dict) -> None:
    assert TOP_KEYS <= set(state)
    assert state["schema"] == 1
    assert AGENT_KEYS <= set(state["agent"]) and STATS_KEYS <= set(state["agent"]["stats"])
    assert ROLLUP_KEYS <= set(state["totals"])
    assert set(state["totals"]["gauges"]) == set(protocol.GAUGES)
    assert set(state["totals"]["counters"]) == set(protocol.COUNTERS)
    for h in state["hosts"]:
        assert ROLLUP_KEYS | {"host", "last_heard_age", "stale"} <= set(h)
    for p in state["programs"]:
        assert ROLLUP_KEYS | {"host", "program"} <= set(p)
    for d in state["databases"]:
        assert ROLLUP_KEYS | {"target"} <= set(d)
    for p in state["processes"]:
        assert ROLLUP_KEYS | {"host", "pid", "program", "started", "last_report_age", "dropped"} <= set(p)
        assert isinstance(p["pools"], list)


def test_status_json_of_an_empty_agent(agent):
    r = run("status", "--json", "--socket", agent.socket)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    check_schema(state)
    assert state["processes"] == [] and state["hosts"] == []
    assert state["totals"]["processes"] == 0 and state["totals"]["capacity"] == 0
    assert state["agent"]["socket"] == agent.socket and state["agent"]["pid"] == agent.proc.pid


def test_status_json_of_a_populated_agent(scripts, agent):
    c = populate(scripts, agent)
    r = run("status", "--json", "--socket", agent.socket)
    assert r.returncode == 0, r.stderr
    state = json.loads(r.stdout)
    check_schema(state)
    [proc] = state["processes"]
    assert (proc["pid"], proc["program"], proc["dropped"]) == (c.pid, "nova-api", 3)
    assert state["totals"]["capacity"] is None  # the NullPool is unbounded
    assert state["totals"]["longest_checkout"] >= 4.0
    assert state["agent"]["stats"]["dropped_by_clients"] == 3


def test_status_table_of_an_empty_agent(agent):
    r = run("status", "--socket", agent.socket)
    assert r.returncode == 0, r.stderr
    assert f"at {agent.socket}" in r.stdout
    assert "no processes are reporting" in r.stdout


def test_status_table_of_a_populated_agent(scripts, agent):
    c = populate(scripts, agent)
    out = run("status", "--socket", agent.socket).stdout
    lines = out.splitlines()
    header = next(line for line in lines if line.startswith("PROCESS / POOL"))
    assert header.split() == ["PROCESS", "/", "POOL", "CLASS", "OUT", "IDLE", "OPEN", "CAP", "LONGEST", "HOLDERS"]
    pool_line = next(line for line in lines if "Engine(mysql+pymysql://nova@db:3306/nova)" in line)
    cells = pool_line.split()
    assert cells[1:6] == ["QueuePool", "2", "1", "3", "15"]
    assert "GET /servers 4." in pool_line and "worker-3" in pool_line
    assert any(line.startswith(f"{agent.state()['agent']['host']} {c.pid} nova-api") for line in lines)
    assert any(line.startswith("sqlite:///x.db") and line.split()[-2] == "-" for line in lines)  # unbounded: no CAP
    for section in ("HOST", "PROGRAM", "DATABASE"):
        assert any(line.split()[:1] == [section] for line in lines)


def test_status_without_an_agent_is_one_clear_line(short_tmp):
    sock = os.path.join(short_tmp, "none", "agent.sock")
    r = run("status", "--socket", sock)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [f"connmon-agent status: error: no connmon agent at {sock} (no socket there)"]


def test_socket_comes_from_the_environment(agent):
    env = dict(os.environ, CONNMON_SOCKET=agent.socket)
    r = run("status", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["agent"]["pid"] == agent.proc.pid


def test_debug_shows_the_traceback(short_tmp):
    r = run("status", "--debug", "--socket", os.path.join(short_tmp, "agent.sock"))
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "AgentUnavailable" in r.stderr


def test_bad_option_value_is_a_usage_error(short_tmp):
    r = run("start", "--socket", os.path.join(short_tmp, "a.sock"), "--stale-after", "soon")
    assert r.returncode == 2 and "not a number" in r.stderr


def test_help_lists_the_subcommands():
    r = run("--help")
    assert r.returncode == 0
    for name in ("start", "stop", "status"):
        assert name in r.stdout
    assert "trust-hello-pid" not in run("start", "--help").stdout


def test_plugged_subcommands_are_registered_only_when_present():
    from connmon_agent import cli

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, module in cli.PLUGGED_COMMANDS:
        assert (name in sub.choices) == cli._find_module(module)
