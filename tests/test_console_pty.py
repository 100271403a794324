"""The real console in a real terminal (tmux) against a real agent and real
processes reporting through the ``?plugin=connmon`` SQLAlchemy plugin; and
its headless twin (``--once --json|--csv``) against the same.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from typing import Any

import pytest

from conftest import wait_for

TMUX = shutil.which("tmux")

# A process holding ``hold`` connections of a SQLite pool, the first one
# taken under a named request, until a line arrives on stdin.
REPORTER = r"""
import sys
import sqlalchemy as sa
from connmon_agent.client import holder

db, sock, program, hold = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
url = (f"sqlite:///{db}?plugin=connmon&connmon_socket={sock}"
       f"&connmon_interval=0.2&connmon_program_name={program}&connmon_where=on")
engine = sa.create_engine(url, pool_size=3, max_overflow=2)
held = []
with holder("GET /orders/<id>", kind="request"):
    held.append(engine.connect())
for _ in range(hold - 1):
    held.append(engine.connect())
print("ready", flush=True)
sys.stdin.readline()
"""


def start_reporters(scripts: Any, short_tmp: str, agent: Any) -> None:
    db = os.path.join(short_tmp, "app.db")
    for program, hold in (("orders-web", 2), ("billing", 1)):
        p = scripts.spawn(REPORTER, db, agent.socket, program, str(hold), name=program.replace("-", "_"))
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "ready", p.stderr.read() if p.stderr else ""
    agent.wait_state(lambda s: len(s["processes"]) == 2
                     and s["totals"]["gauges"]["checked_out"] == 3, what="two reporters")


class Terminal:
    """One tmux server on a private socket with one 80x24 window."""

    def __init__(self, directory: str, cols: int = 80, rows: int = 24) -> None:
        self.sock = os.path.join(directory, "tmux.sock")
        self.cols, self.rows = cols, rows

    def tmux(self, *args: str) -> str:
        out = subprocess.run([TMUX, "-S", self.sock, *args], capture_output=True, text=True, timeout=10)
        if out.returncode:
            raise AssertionError(f"tmux {args}: {out.stderr}")
        return out.stdout

    def start(self, command: str) -> None:
        # The pane's shell prints the exit status and stays, so the screen
        # after the console can be read.
        self.tmux("new-session", "-d", "-s", "t", "-x", str(self.cols), "-y", str(self.rows),
                  f"{command}; echo CONSOLE-EXIT=$?; exec sleep 600")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "t")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "t", *keys)

    def literal(self, text: str) -> None:
        self.tmux("send-keys", "-t", "t", "-l", text)

    def flag(self, name: str) -> str:
        return self.tmux("display", "-p", "-t", "t", f"#{{{name}}}").strip()

    def wait(self, predicate: Any, what: str, timeout: float = 10.0) -> str:
        holder: dict[str, str] = {}

        def check() -> bool:
            holder["s"] = self.screen()
            return bool(predicate(holder["s"]))

        try:
            wait_for(check, timeout, interval=0.1, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}\n--- screen ---\n{holder.get('s')}") from None
        return holder["s"]

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.sock, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal(short_tmp: str) -> Any:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    t = Terminal(short_tmp)
    yield t
    t.close()


def console_command(agent: Any, short_tmp: str, *extra: str) -> str:
    log = os.path.join(short_tmp, "console.log")
    return (f"{sys.executable} -m connmon_agent console --socket {agent.socket} "
            f"--refresh 0.2 --log-file {log} " + " ".join(extra))


def table_rows(screen: str) -> list[str]:
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip("▲▼").startswith("HOST"))
    out = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        out.append(line)
    return out


def test_console_in_a_terminal_shows_sorts_filters_drills_and_quits(
        agent: Any, scripts: Any, short_tmp: str, terminal: Terminal) -> None:
    start_reporters(scripts, short_tmp, agent)
    terminal.start(console_command(agent, short_tmp))
    screen = terminal.wait(lambda s: "orders-web" in s and "billing" in s and "● live" in s,
                           "both programs on screen")
    assert terminal.flag("alternate_on") == "1"
    assert "procs 2" in screen and "out 3" in screen

    terminal.literal("P")                       # sort by program, A to Z
    terminal.wait(lambda s: [r.split()[1] for r in table_rows(s)] == ["billing", "orders-web"]
                  and "PROGRAM▲" in s, "sorted by program")
    terminal.literal("P")                       # again: Z to A
    terminal.wait(lambda s: [r.split()[1] for r in table_rows(s)] == ["orders-web", "billing"]
                  and "PROGRAM▼" in s, "reverse order")

    terminal.literal("/orders")
    terminal.keys("Enter")
    screen = terminal.wait(lambda s: len(table_rows(s)) == 1 and "filter /orders/" in s, "filtered")
    assert "orders-web" in table_rows(screen)[0]
    assert "procs 1" in screen and "out 2" in screen   # the header totals what is shown

    terminal.keys("Enter")                      # one process, one pool: its detail
    screen = terminal.wait(lambda s: "Checkouts (2)" in s, "the pool's detail")
    assert "GET /orders/<id>" in screen and "request" in screen
    assert "in <module>" in screen              # where each checkout was taken
    assert "Configuration  class QueuePool" in screen

    terminal.keys("Escape")
    terminal.wait(lambda s: "orders-web" in s and "Checkouts" not in s, "back to the table")
    terminal.literal("q")
    screen = terminal.wait(lambda s: "CONSOLE-EXIT=" in s, "the console to exit")
    assert "CONSOLE-EXIT=0" in screen
    assert "Traceback" not in screen
    assert terminal.flag("alternate_on") == "0"   # the terminal is restored
    assert terminal.flag("cursor_flag") == "1"


def test_console_says_the_agent_is_gone_and_reconnects(
        agent_factory: Any, scripts: Any, short_tmp: str, terminal: Terminal) -> None:
    agent = agent_factory()
    start_reporters(scripts, short_tmp, agent)
    terminal.start(console_command(agent, short_tmp))
    terminal.wait(lambda s: "orders-web" in s and "● live" in s, "the console live")
    agent.kill()
    screen = terminal.wait(lambda s: "agent lost" in s, "the console to notice the agent is gone")
    assert "reconnecting" in screen and "orders-web" in screen   # the last state stays on screen
    again = agent_factory(directory=agent.dir)   # same socket path
    # The reporters reconnect to the new agent and the console follows it.
    again.wait_state(lambda s: len(s["processes"]) == 2, what="reporters back", timeout=15)
    screen = terminal.wait(lambda s: "● live" in s and "agent lost" not in s
                           and "orders-web" in s and "billing" in s,
                           "the console reconnected", timeout=15)
    assert f"agent {again.proc.pid}" in screen
    terminal.keys("C-c")                        # Ctrl-C ends it cleanly too
    screen = terminal.wait(lambda s: "CONSOLE-EXIT=" in s, "the console to exit")
    assert "CONSOLE-EXIT=0" in screen and "Traceback" not in screen
    assert terminal.flag("alternate_on") == "0"
    assert terminal.flag("cursor_flag") == "1"


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "connmon_agent", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_once_json_and_csv_print_what_the_screen_shows(agent: Any, scripts: Any, short_tmp: str) -> None:
    start_reporters(scripts, short_tmp, agent)
    out = run_cli("console", "--socket", agent.socket, "--once", "--json", "--refresh", "0.2")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["schema"] == 1 and doc["view"] == "program" and doc["sort"] == "connections"
    assert doc["totals"]["processes"] == 2 and doc["totals"]["checked_out"] == 3
    by_program = {r["program"]: r for r in doc["rows"]}
    assert set(by_program) == {"orders-web", "billing"}
    assert by_program["orders-web"]["checked_out"] == 2
    assert by_program["billing"]["checked_out"] == 1
    assert set(by_program["orders-web"]) >= {"kind", "host", "program", "processes", "pools",
                                             "connections", "checked_out", "idle",
                                             "checkouts_per_sec", "fullest_pool",
                                             "longest_checkout", "stale", "history"}
    [db] = doc["databases"]
    assert db["target"].startswith("sqlite") and db["capacity"] == 10   # 2 pools of 3 + 2
    # The same figures the agent reports.
    state = agent.state()
    assert doc["totals"]["connections"] == state["totals"]["gauges"]["connections"]

    out = run_cli("console", "--socket", agent.socket, "--once", "--csv", "--view", "process",
                  "--sort", "pid", "--filter", "program:orders")
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert out.stdout.splitlines()[0] == ("kind,host,pid,program,pools,connections,checked_out,idle,"
                                          "checkouts_per_sec,fullest_pool,longest_checkout,"
                                          "last_report_age,started,stale")
    assert [(r["program"], r["checked_out"], r["stale"]) for r in rows] == [("orders-web", "2", "false")]


def test_console_without_an_agent_prints_one_line(short_tmp: str) -> None:
    sock = os.path.join(short_tmp, "nobody.sock")
    out = run_cli("console", "--socket", sock, "--once", "--json")
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [f"connmon-agent console: error: no connmon agent at {sock} (no socket there)"]
    out = run_cli("console", "--socket", sock, "--hold-warn", "10", "--hold-crit", "5")
    assert out.returncode == 2 and "--hold-crit must not be below --hold-warn" in out.stderr


def test_console_without_urwid_says_how_to_get_it(short_tmp: str) -> None:
    code = ("import sys; sys.modules['urwid'] = None\n"
            "from connmon_agent.cli import main\n"
            f"sys.exit(main(['console', '--socket', {os.path.join(short_tmp, 's')!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == "the console needs urwid: pip install 'connmon[console]'"
