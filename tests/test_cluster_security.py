"""Peer links and TCP reporters under attack or disorder: forged, tampered,
replayed and oversized frames are dropped and counted, never applied;
duplicated, reordered and gapped syncs are ignored; binding beyond
loopback without a secret is refused. A hand-driven peer speaks the real
protocol to a real agent."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from typing import Any

import pytest

from cluster_support import (REPORTER, Peer, make_agent, peer_hello, proc, reporter_url, sync, write_config,
                             write_secret)
from connmon_agent import auth, protocol


@pytest.fixture
def node(short_tmp: str) -> Any:
    """One real agent n1 of a service whose other node, "fake", is this test."""
    made: list[Any] = []
    secret_path = write_secret(short_tmp)
    cfg = write_config(short_tmp, ["n1", "fake"], secret=secret_path, sync=0.2, stale=30, drop=60)
    agent = make_agent(short_tmp, cfg["path"], "n1", "h1", made).start()
    with open(secret_path, "rb") as f:
        secret = f.read().strip()
    peers: list[Peer] = []

    def connect(secret_: bytes | None = secret, hello: dict[str, Any] | None = None) -> Peer:
        p = Peer(cfg["ports"]["n1"], secret_, hello or peer_hello("fake"))
        peers.append(p)
        return p

    yield {"agent": agent, "port": cfg["ports"]["n1"], "secret": secret, "secret_path": secret_path,
           "connect": connect, "config": cfg, "dir": short_tmp}
    for p in peers:
        p.close()
    for a in made:
        a.kill()


def stats(agent: Any) -> dict[str, Any]:
    return agent.state()["agent"]["stats"]


def remote_pids(agent: Any) -> list[int]:
    return sorted(p["pid"] for p in agent.state()["processes"] if p["host"] == "host-fake")


def test_an_authenticated_peer_state_is_applied_and_shown(node: dict[str, Any]) -> None:
    peer = node["connect"]()
    assert peer.welcome["t"] == "welcome" and peer.welcome["node"] == "n1"
    peer.send(sync("fake", boot=1, seq=1, full=True, procs=[proc("fake", 11)]))
    st = node["agent"].wait_state(lambda s: any(p["host"] == "host-fake" for p in s["processes"]), what="applied")
    (row,) = [p for p in st["processes"] if p["host"] == "host-fake"]
    assert row["pid"] == 11 and row["pools"][0]["checkouts"][0]["age"] >= 2.0
    assert {h["host"] for h in st["hosts"]} == {"h1", "host-fake"}


def test_a_forged_hello_is_refused_and_counted(node: dict[str, Any]) -> None:
    # A peer with the wrong secret sees that the agent's challenge is not
    # from its cluster, and stops there.
    with pytest.raises(auth.AuthError, match="does not know the shared secret"):
        node["connect"](secret_=b"not-the-secret-of-this-cluster")
    # A forger goes on anyway with a made-up proof: refused and counted.
    forger = auth.ClientHandshake(b"not-the-secret-of-this-cluster")
    raw = socket.create_connection(("127.0.0.1", node["port"]), timeout=5)
    raw.sendall(forger.hello_frame(peer_hello("fake")))
    assert b"challenge" in raw.recv(65536)
    raw.sendall(protocol.encode({"t": "proof", "mac": os.urandom(32).hex()}))
    raw.sendall(protocol.encode(sync("fake", boot=1, seq=1, full=True, procs=[proc("fake", 11)])))
    reply = raw.recv(65536)
    raw.close()
    assert b"authentication failed" in reply
    node["agent"].wait_state(lambda s: s["agent"]["stats"]["forged"] == 1, what="forged counted")
    # No secret at all: refused before any state is read.
    raw = socket.create_connection(("127.0.0.1", node["port"]), timeout=5)
    raw.sendall(protocol.encode(peer_hello("fake")))
    reply = raw.recv(65536)
    raw.close()
    assert b"requires authentication" in reply
    assert remote_pids(node["agent"]) == []


def test_a_tampered_frame_is_dropped_counted_and_closes_the_link(node: dict[str, Any]) -> None:
    peer = node["connect"]()
    peer.send(sync("fake", boot=1, seq=1, full=True, procs=[proc("fake", 11)]))
    node["agent"].wait_state(lambda s: any(p["host"] == "host-fake" for p in s["processes"]), what="applied")
    frame = bytearray(peer.frame(sync("fake", boot=1, seq=2, full=True, procs=[proc("fake", 66)])))
    frame[-5] ^= 0x01  # one bit of the payload
    peer.raw(bytes(frame))
    assert peer.closed()
    st = node["agent"].wait_state(lambda s: s["agent"]["stats"]["tampered"] == 1, what="tampered counted")
    assert [p["pid"] for p in st["processes"] if p["host"] == "host-fake"] == [11]
    assert "tampered frame dropped" in node["agent"].read_log()


def test_replayed_frames_and_a_replayed_session_are_refused(node: dict[str, Any]) -> None:
    peer = node["connect"]()
    first = peer.send(sync("fake", boot=1, seq=1, full=True, procs=[proc("fake", 11)]))
    node["agent"].wait_state(lambda s: remote_pids(node["agent"]) == [11] or None, what="applied")
    peer.raw(first)  # the same sealed frame again, on the same link
    assert peer.closed()
    node["agent"].wait_state(lambda s: s["agent"]["stats"]["replayed"] == 1, what="replay counted")
    # A whole recorded session sent again on a new connection: hello (same nonce), proof, frames.
    recorded = b"".join(peer.sent[:3])
    raw = socket.create_connection(("127.0.0.1", node["port"]), timeout=5)
    raw.sendall(recorded)
    raw.settimeout(5)
    got = b""
    while True:
        data = raw.recv(65536)
        if not data:
            break
        got += data
    raw.close()
    assert b"replayed" in got
    st = node["agent"].wait_state(lambda s: s["agent"]["stats"]["replayed"] == 2, what="session replay counted")
    assert st["agent"]["stats"]["sync_applied"] == 1


def test_oversized_frames_are_refused_before_they_are_read(node: dict[str, Any]) -> None:
    raw = socket.create_connection(("127.0.0.1", node["port"]), timeout=5)
    raw.sendall(struct.pack("!I", 200 << 20) + b"{")
    raw.settimeout(5)
    assert raw.recv(65536) is not None
    raw.close()
    node["agent"].wait_state(lambda s: s["agent"]["stats"]["oversized"] == 1, what="oversized counted")
    # After the handshake too: a peer frame over max_peer_frame (64 MiB).
    peer = node["connect"]()
    peer.raw(struct.pack("!I", (64 << 20) + auth.SEALED_OVERHEAD + 1))
    assert peer.closed()
    node["agent"].wait_state(lambda s: s["agent"]["stats"]["oversized"] == 2, what="second oversized counted")


def test_duplicated_reordered_and_gapped_syncs(node: dict[str, Any]) -> None:
    agent = node["agent"]
    peer = node["connect"]()
    peer.send(sync("fake", boot=5, seq=5, full=True, procs=[proc("fake", 1)]))
    agent.wait_state(lambda s: remote_pids(agent) == [1] or None, what="seq 5")
    peer.send(sync("fake", boot=5, seq=3, full=True, procs=[proc("fake", 3)]))   # older: ignored
    peer.send(sync("fake", boot=5, seq=5, full=True, procs=[proc("fake", 3)]))   # duplicate: ignored
    peer.send(sync("fake", boot=5, seq=6, full=False, base=5, procs=[proc("fake", 2)]))  # applies
    delta7 = sync("fake", boot=5, seq=7, full=False, base=6, gone=[["host-fake", 1, 1001.0]])
    peer.send(delta7)
    peer.send(delta7)  # the same update again (sealed anew): ignored
    peer.send(sync("fake", boot=5, seq=6, full=False, base=5, procs=[proc("fake", 9)]))  # reordered: ignored
    st = agent.wait_state(lambda s: s["agent"]["stats"]["sync_received"] == 7, what="all seven read")
    assert remote_pids(agent) == [2]
    assert st["agent"]["stats"]["sync_ignored"] == 4 and st["agent"]["stats"]["sync_applied"] == 3
    # A gap (base 8, held 7): not applied, and the node asks for a full sync.
    peer.send(sync("fake", boot=5, seq=9, full=False, base=8, procs=[proc("fake", 4)]))
    assert peer.recv() == {"t": "resync"}
    assert remote_pids(agent) == [2]
    peer.send(sync("fake", boot=5, seq=9, full=True, procs=[proc("fake", 2), proc("fake", 4)]))
    agent.wait_state(lambda s: remote_pids(agent) == [2, 4] or None, what="whole after the full sync")
    # A restarted origin (new boot) replaces everything, whatever its seq.
    peer.send(sync("fake", boot=6, seq=1, full=True, procs=[proc("fake", 8)]))
    agent.wait_state(lambda s: remote_pids(agent) == [8] or None, what="new boot replaces")


def test_a_peer_may_speak_only_for_itself(node: dict[str, Any]) -> None:
    with pytest.raises(ConnectionError, match="is not a peer node"):
        node["connect"](hello=peer_hello("stranger"))
    agent = node["agent"]
    agent.wait_state(lambda s: s["agent"]["stats"]["rejected"] >= 1, what="unknown node rejected")
    peer = node["connect"]()
    msg = sync("fake", boot=1, seq=1, full=True, procs=[proc("fake", 1)])
    msg["node"] = "n1"  # forwarding someone else's state
    peer.send(msg)
    assert peer.closed()
    bad = sync("fake", boot=1, seq=1, full=True, procs=[dict(proc("fake", 1), host="elsewhere")])
    peer = node["connect"]()
    peer.send(bad)
    assert peer.closed()
    agent.wait_state(lambda s: s["agent"]["stats"]["bad_frames"] >= 2, what="bad syncs counted")
    assert remote_pids(agent) == []


def test_non_loopback_bind_without_a_secret_is_refused(short_tmp: str) -> None:
    cfg = os.path.join(short_tmp, "open.cfg")
    with open(cfg, "w") as f:
        f.write("[connmon_service_default]\nnodes:\n    n1 hostname=192.0.2.10:5800 bind=0.0.0.0\n")
    out = subprocess.run([sys.executable, "-m", "connmon_agent", "start", "--socket", f"{short_tmp}/r/a.sock",
                          "--config", cfg, "--node", "n1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "would listen on 0.0.0.0:5800, which is not loopback, without peer authentication" in out.stderr
    assert not os.path.exists(f"{short_tmp}/r/a.sock")


def test_tcp_reporter_with_the_secret_is_shown_under_its_claimed_host(node: dict[str, Any], scripts: Any) -> None:
    agent = node["agent"]
    url = reporter_url(f"{node['dir']}/tcp.db", "in-a-container", addr=f"127.0.0.1:{node['port']}",
                       secret_file=node["secret_path"])
    p = scripts.spawn(REPORTER, url, name="tcp_rep")
    assert p.stdout.readline().strip() == "ready"
    # The first report may predate the checkout (the reporter starts with the engine): wait for the one after it.
    st = agent.wait_state(lambda s: any(r["program"] == "in-a-container" and r["gauges"]["checked_out"] == 1
                                        for r in s["processes"]), what="tcp reporter's checkout")
    (row,) = [r for r in st["processes"] if r["program"] == "in-a-container"]
    assert row["pid"] == p.pid and row["host"] == socket.gethostname() and row["uid"] is None
    p.stdin.write("\n")
    p.stdin.flush()
    p.wait(10)
    agent.wait_state(lambda s: not any(r["program"] == "in-a-container" for r in s["processes"]), what="gone")


def test_tcp_reporter_without_the_secret_is_refused(node: dict[str, Any], scripts: Any) -> None:
    agent = node["agent"]
    env = {"CONNMON_SECRET_FILE": ""}
    url = reporter_url(f"{node['dir']}/tcp.db", "no-secret", addr=f"127.0.0.1:{node['port']}")
    p = scripts.spawn(REPORTER, url, name="tcp_rep", env=env)
    assert p.stdout.readline().strip() == "ready"
    agent.wait_state(lambda s: s["agent"]["stats"]["rejected"] >= 1, what="refused")
    assert not any(r["program"] == "no-secret" for r in agent.state()["processes"])


def test_service_reporter_falls_back_to_a_node_over_tcp(node: dict[str, Any], scripts: Any) -> None:
    agent = node["agent"]
    # No local agent at this socket: the service's nodes are tried (the
    # "fake" node does not answer; n1 does), authenticated with the
    # service's secret_file from CONNMON_CONFIG.
    url = reporter_url(f"{node['dir']}/svc.db", "by-service", service="default",
                       socket=f"{node['dir']}/nobody-here.sock")
    p = scripts.spawn(REPORTER, url, name="svc_rep", env={"CONNMON_CONFIG": node["config"]["path"]})
    assert p.stdout.readline().strip() == "ready"
    agent.wait_state(lambda s: any(r["program"] == "by-service" for r in s["processes"]), timeout=10,
                     what="service reporter over TCP")


def test_service_reporter_prefers_the_local_agent(node: dict[str, Any], scripts: Any) -> None:
    agent = node["agent"]
    url = reporter_url(f"{node['dir']}/svc.db", "local-first", service="default", socket=agent.socket)
    p = scripts.spawn(REPORTER, url, name="svc_rep", env={"CONNMON_CONFIG": node["config"]["path"]})
    assert p.stdout.readline().strip() == "ready"
    st = agent.wait_state(lambda s: any(r["program"] == "local-first" for r in s["processes"]), what="local reporter")
    (row,) = [r for r in st["processes"] if r["program"] == "local-first"]
    assert row["uid"] == os.getuid()  # SO_PEERCRED: it came over the Unix socket
