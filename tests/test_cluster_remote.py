"""``connmon-agent status`` and ``console`` against a remote agent over
authenticated TCP (``--addr``, ``--node``, ``--secret-file``), with a real
two-node cluster: node A is asked over TCP and shows node B's host."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from cluster_support import REPORTER, free_port, make_agent, reporter_url, write_config, write_secret
from connmon_agent import auth
from connmon_agent.endpoint import Endpoint
from connmon_agent.errors import AgentUnavailable
from connmon_agent.query import AgentLink, Subscription, fetch_state


@pytest.fixture
def pair(short_tmp: str, scripts: Any) -> Any:
    """Nodes a (host ha) and b (host hb), authenticated; one reporter on b."""
    made: list[Any] = []
    secret = write_secret(short_tmp)
    cfg = write_config(short_tmp, ["a", "b"], secret=secret, sync=0.2, stale=5.0, drop=30.0)
    a = make_agent(short_tmp, cfg["path"], "a", "ha", made).start()
    b = make_agent(short_tmp, cfg["path"], "b", "hb", made).start()
    rep = scripts.spawn(REPORTER, reporter_url(f"{short_tmp}/b.db", "prog-b", socket=b.socket), name="rep_b")
    assert rep.stdout.readline().strip() == "ready"
    # Its first report may go out before its checkout: wait for the checkout.
    a.wait_state(lambda s: any(p["host"] == "hb" and p["gauges"]["checked_out"] == 1 for p in s["processes"]),
                 timeout=10, what="hb's process, holding its connection, on a")
    yield {"a": a, "b": b, "config": cfg["path"], "secret": secret, "port": cfg["ports"]["a"], "dir": short_tmp}
    rep.stdin.write("\n")
    rep.stdin.flush()
    rep.wait(10)
    for agent in made:
        agent.kill()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with only the CONNMON_CONFIG / CONNMON_SECRET_FILE of ``env``."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("CONNMON_CONFIG", "CONNMON_SECRET_FILE")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "connmon_agent", *args], capture_output=True, text=True,
                          timeout=30, env=full_env)


def test_status_over_tcp_shows_the_peers_host(pair: dict[str, Any]) -> None:
    out = cli("status", "--addr", f"127.0.0.1:{pair['port']}", "--secret-file", pair["secret"])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("HOST"))
    assert [line.split()[0] for line in lines[header + 1:header + 3]] == ["ha", "hb"]
    assert "prog-b" in out.stdout
    # --node through the configuration file, the secret from the service's secret_file.
    out = cli("status", "--json", "--node", "a", "--config", pair["config"])
    assert out.returncode == 0, out.stderr
    state = json.loads(out.stdout)
    assert state["agent"]["host"] == "ha"
    assert {h["host"]: h["stale"] for h in state["hosts"]} == {"ha": False, "hb": False}
    # ... and from $CONNMON_CONFIG / $CONNMON_SECRET_FILE.
    out = cli("status", "--json", "--node", "b", env={"CONNMON_CONFIG": pair["config"]})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["agent"]["host"] == "hb"
    out = cli("status", "--json", "--addr", f"127.0.0.1:{pair['port']}", env={"CONNMON_SECRET_FILE": pair["secret"]})
    assert out.returncode == 0, out.stderr


def test_console_once_json_over_tcp(pair: dict[str, Any]) -> None:
    out = cli("console", "--once", "--json", "--view", "host", "--refresh", "0.2", "--sort", "host",
              "--addr", f"127.0.0.1:{pair['port']}", "--secret-file", pair["secret"])
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["agent"]["host"] == "ha"
    rows = {r["host"]: r for r in doc["rows"]}
    assert list(rows) == ["ha", "hb"]
    assert rows["hb"]["processes"] == 1 and rows["hb"]["stale"] is False
    assert rows["ha"]["processes"] == 0 and rows["ha"]["last_heard_age"] is not None
    assert doc["totals"]["hosts"] == 2


def test_a_remote_process_from_a_real_cluster_drills_down_in_the_console(pair: dict[str, Any]) -> None:
    pytest.importorskip("urwid")
    from test_console_widgets import ENTER, Console

    with open(pair["secret"], "rb") as f:
        secret = f.read().strip()
    state = fetch_state(Endpoint(addr=("127.0.0.1", pair["port"]), secret=secret))
    c = Console(80, 30)
    c.feed(state)
    c.type("4")
    c.type("/host:hb\r")
    assert [line.split()[0] for line in c.rows()] == ["hb"]
    c.type(ENTER)
    screen = c.screen_text()
    assert "Process hb pid" in screen and "prog-b" in screen
    assert "Checkouts (1)" in screen and "MainThread" in screen


def test_wrong_secret_nothing_listening_and_bad_addresses_are_one_line(pair: dict[str, Any]) -> None:
    wrong = os.path.join(pair["dir"], "wrong")
    with open(wrong, "wb") as f:
        f.write(b"not-the-secret-of-this-cluster")
    os.chmod(wrong, 0o600)
    addr = f"127.0.0.1:{pair['port']}"
    for command in (["status"], ["console", "--once", "--json"]):
        out = cli(*command, "--addr", addr, "--secret-file", wrong)
        assert out.returncode == 1 and out.stdout == ""
        assert out.stderr.count("\n") == 1, out.stderr
        assert f"authentication with the agent at {addr} failed" in out.stderr and "secret" in out.stderr
    # No secret at all: the agent says it requires one.
    out = cli("status", "--addr", addr)
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "requires authentication" in out.stderr
    # Nothing listening.
    port = free_port()
    out = cli("status", "--addr", f"127.0.0.1:{port}", "--secret-file", pair["secret"])
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert f"no connmon agent at 127.0.0.1:{port} (connection refused: nothing listens there)" in out.stderr
    # Bad addresses and options: configuration errors (exit 2).
    for args, says in ((["--addr", "nohostport"], "is not HOST:PORT"),
                       (["--addr", "127.0.0.1:99999"], "bad port"),
                       (["--node", "zz", "--config", pair["config"]], "no node 'zz'"),
                       (["--secret-file", pair["secret"]], "needs --addr HOST:PORT or --node NAME"),
                       (["--addr", addr, "--socket", "/tmp/x.sock"], "not both")):
        for command in ("status", "console"):
            out = cli(command, *args, *(["--once"] if command == "console" else []))
            assert out.returncode == 2, (command, args, out.stderr)
            assert out.stderr.count("\n") == 1 and says in out.stderr, out.stderr
    # A secret file others can read is refused before connecting.
    os.chmod(wrong, 0o644)
    out = cli("status", "--addr", addr, "--secret-file", wrong)
    assert out.returncode == 2 and "chmod 600" in out.stderr


def test_close_wakes_a_thread_blocked_reading(pair: dict[str, Any]) -> None:
    # Over TCP and over the Unix socket: a subscription at a long interval
    # blocks in recv; close() from another thread ends it at once.
    with open(pair["secret"], "rb") as f:
        secret = f.read().strip()
    for where in (Endpoint(addr=("127.0.0.1", pair["port"]), secret=secret), pair["a"].socket):
        sub = Subscription(where, interval=30.0, timeout=60.0)
        next(sub)                      # the first state comes at once; the next in 30 s
        errors: list[BaseException] = []

        def read() -> None:
            try:
                next(sub)
            except AgentUnavailable as err:
                errors.append(err)

        t = threading.Thread(target=read)
        t.start()
        time.sleep(0.2)                # let it block in recv
        sub.close()
        t.join(5.0)
        assert not t.is_alive() and len(errors) == 1


def test_agent_link_over_tcp_is_sealed(pair: dict[str, Any]) -> None:
    with open(pair["secret"], "rb") as f:
        secret = f.read().strip()
    with AgentLink(Endpoint(addr=("127.0.0.1", pair["port"]), secret=secret)) as link:
        assert link.welcome["node"] == "a" and link._opener is not None
        assert link.query()["agent"]["host"] == "ha"
    with pytest.raises(auth.AuthError, match="does not know this shared secret"):
        AgentLink(Endpoint(addr=("127.0.0.1", pair["port"]), secret=b"x" * 32))
    stats = fetch_state(pair["a"].socket)["agent"]["stats"]
    assert stats["forged"] == 0   # the client stopped at the challenge: nothing forged reached the agent
