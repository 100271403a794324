"""Three real agents on this machine (distinct loopback ports, sockets and
host names), each with real reporting processes: they converge on one
cluster state, a killed node goes stale then is dropped, and it rejoins."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import pytest

from cluster_support import REPORTER, make_agent, reporter_url, write_config, write_secret

NODES = ("n1", "n2", "n3")


@pytest.fixture
def cluster(short_tmp: str) -> Any:
    made: list[Any] = []
    secret = write_secret(short_tmp)
    cfg = write_config(short_tmp, list(NODES), secret=secret, sync=0.2, stale=1.0, drop=2.5)
    agents = {n: make_agent(short_tmp, cfg["path"], n, f"h{n[1]}", made) for n in NODES}
    for a in agents.values():
        a.start()
    yield {"agents": agents, "config": cfg, "secret": secret, "dir": short_tmp}
    for a in made:
        if a.proc is not None and a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        a.kill()


def view(state: dict[str, Any]) -> tuple[Any, ...]:
    """What every node must agree on: hosts, and each process's pools."""
    procs = sorted((p["host"], p["program"], p["pid"], p["gauges"]["checked_out"], p["stale"]) for p in state["processes"])
    hosts = sorted((h["host"], h["processes"], h["stale"]) for h in state["hosts"])
    return tuple(hosts), tuple(procs), state["totals"]["gauges"]["checked_out"]


def start_reporters(scripts: Any, cluster: dict[str, Any]) -> dict[str, Any]:
    procs = {}
    for n, a in cluster["agents"].items():
        url = reporter_url(f"{cluster['dir']}/{n}.db", f"prog-{n}", socket=a.socket)
        p = scripts.spawn(REPORTER, url, name=f"rep_{n}")
        assert p.stdout.readline().strip() == "ready"
        procs[n] = p
    return procs


def converged(cluster: dict[str, Any], expect_hosts: set[str], expect_procs: int) -> Any:
    views = []
    for a in cluster["agents"].values():
        if a.proc.poll() is not None:
            continue
        s = a.state()
        v = view(s)
        if {h[0] for h in v[0]} != expect_hosts or len(v[1]) != expect_procs or any(h[2] for h in v[0]):
            return False
        if any(p[4] for p in v[1]):
            return False
        views.append(v)
    return all(v == views[0] for v in views) and views


def test_three_nodes_converge_and_a_killed_node_goes_stale_is_dropped_and_rejoins(cluster: dict[str, Any], scripts: Any) -> None:
    from conftest import wait_for

    agents = cluster["agents"]
    reps = start_reporters(scripts, cluster)
    views = wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 3), timeout=10, what="convergence")
    hosts, procs, out = views[0]
    assert out == 3
    assert {(p[0], p[1]) for p in procs} == {("h1", "prog-n1"), ("h2", "prog-n2"), ("h3", "prog-n3")}
    # A remote process carries its pools and checkouts (drill-down works anywhere).
    s1 = agents["n1"].state()
    (remote,) = [p for p in s1["processes"] if p["host"] == "h2"]
    (pool,) = remote["pools"]
    assert pool["checkouts"][0]["holder"] == "MainThread" and pool["checkouts"][0]["age"] > 0
    assert [p["node"] for p in s1["agent"]["cluster"]["peers"]] == ["n2", "n3"]
    assert all(p["linked"] and p["inbound"] for p in s1["agent"]["cluster"]["peers"])

    # SIGKILL n2: the others show h2 stale at once (its links closed) ...
    agents["n2"].kill()
    for n in ("n1", "n3"):
        st = agents[n].wait_state(lambda s: any(h["host"] == "h2" and h["stale"] for h in s["hosts"]), what="h2 stale")
        (p2,) = [p for p in st["processes"] if p["host"] == "h2"]
        assert p2["stale"] is True
        assert all(not h["stale"] for h in st["hosts"] if h["host"] != "h2")
    # ... then dropped after peer_drop_after
    for n in ("n1", "n3"):
        agents[n].wait_state(lambda s: {h["host"] for h in s["hosts"]} == {"h1", "h3"} and len(s["processes"]) == 2,
                             timeout=8, what="h2 dropped")

    # Restarted, it rejoins: its reporter reconnects and every node converges again.
    agents["n2"].start()
    wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 3), timeout=15, what="convergence after the restart")
    for p in reps.values():
        p.stdin.write("\n")
        p.stdin.flush()
        p.wait(10)
    wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 0), timeout=10, what="every process gone everywhere")


def test_a_peer_cut_off_is_stale_and_whole_again_when_restored(cluster: dict[str, Any], scripts: Any) -> None:
    from conftest import wait_for

    agents = cluster["agents"]
    start_reporters(scripts, cluster)
    wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 3), timeout=10, what="convergence")
    # SIGSTOP: n3's links stay open but say nothing (a cut network, not a crash).
    agents["n3"].signal(signal.SIGSTOP)
    agents["n1"].wait_state(lambda s: any(h["host"] == "h3" and h["stale"] for h in s["hosts"]), what="h3 stale by silence")
    # Held past peer_drop_after: forgotten.
    agents["n1"].wait_state(lambda s: "h3" not in {h["host"] for h in s["hosts"]}, timeout=8, what="h3 dropped")
    agents["n3"].signal(signal.SIGCONT)
    # Restored: n1 holds nothing of n3, so n3's next delta is a gap; one full sync later it is whole.
    wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 3), timeout=10, what="convergence after the cut")
    st = agents["n1"].state()
    assert st["agent"]["stats"]["sync_gaps"] >= 1


def test_status_and_console_on_any_node_show_every_host(cluster: dict[str, Any], scripts: Any) -> None:
    from conftest import wait_for

    agents = cluster["agents"]
    start_reporters(scripts, cluster)
    wait_for(lambda: converged(cluster, {"h1", "h2", "h3"}, 3), timeout=10, what="convergence")
    a3 = agents["n3"]
    out = subprocess.run([sys.executable, "-m", "connmon_agent", "status", "--socket", a3.socket],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("HOST"))
    assert "HEARD" in lines[header]
    assert [line.split()[0] for line in lines[header + 1:header + 4]] == ["h1", "h2", "h3"]
    assert "h1" in out.stdout and "prog-n1" in out.stdout and "prog-n2" in out.stdout
    out = subprocess.run([sys.executable, "-m", "connmon_agent", "console", "--socket", a3.socket, "--once", "--json",
                          "--view", "process", "--refresh", "0.2"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    text = json.dumps(doc)
    for host in ("h1", "h2", "h3"):
        assert f'"{host}"' in text
