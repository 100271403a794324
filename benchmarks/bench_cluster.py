"""Cluster benchmark: how fast a checkout on one node shows on another, and
what the peer links carry at 1,000 processes per host.

1. Latency: two real agents (nodes n1, n2 on loopback, authenticated with a
   shared secret, default ``sync_interval`` 1 s) and one real SQLAlchemy
   process reporting to n1 every second (the default). Each trial checks a
   connection out and times until n1's status shows it (local) and until
   n2's does (peer), both polled every 20 ms, then checks it in and waits
   until both show that too.
2. Bandwidth: node n1 with 1,000 simulated busy processes (the load
   generator of bench_agent_ingest.py, through ``--trust-hello-pid``: every
   pool's counters change every second, a third of the checkouts change),
   n2 its peer; the bytes n1 sent on its peer link per second, with
   deltas and the periodic full sync (``full_sync_interval`` 30 s).

    .venv/bin/python benchmarks/bench_cluster.py [--trials 20] [--duration 30] [--procs 1000]

Targets: a checkout shows in the status of the local agent <= 1.5 s, of
another node <= 3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

from connmon_agent.query import fetch_state  # noqa: E402

HOLDER = """
import sys
import sqlalchemy as sa
e = sa.create_engine(sys.argv[1])
conn = None
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() == "out":
        conn = e.connect()
    elif conn is not None:
        conn.close()
        conn = None
    print("done", flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(workdir: str, sync: float) -> str:
    os.makedirs(workdir, exist_ok=True)
    secret = os.path.join(workdir, "secret")
    with open(secret, "wb") as f:
        f.write(os.urandom(24).hex().encode())
    os.chmod(secret, 0o600)
    path = os.path.join(workdir, "connmon.cfg")
    with open(path, "w") as f:
        f.write(textwrap.dedent(f"""\
            [connmon_service_default]
            name: default
            secret_file: {secret}
            sync_interval: {sync}
            nodes:
                n1 hostname=127.0.0.1:{free_port()}
                n2 hostname=127.0.0.1:{free_port()}
            """))
    return path


class Agent:
    def __init__(self, workdir: str, config: str, node: str, extra: list[str] | None = None) -> None:
        self.socket = os.path.join(workdir, node, "agent.sock")
        self.log = open(os.path.join(workdir, f"{node}.log"), "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connmon_agent", "start", "--socket", self.socket, "--config", config,
             "--node", node, "--host", f"host-{node}", "--log-level", "WARNING", *(extra or [])],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 10
        while True:
            try:
                fetch_state(self.socket, timeout=1)
                return
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"agent {node} did not start")
                time.sleep(0.05)

    def state(self) -> dict:
        return fetch_state(self.socket, timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def checked_out_on(agent: Agent, host: str) -> int:
    return sum(p["gauges"]["checked_out"] for p in agent.state()["processes"] if p["host"] == host)


def wait_linked(*agents: Agent) -> None:
    deadline = time.monotonic() + 15
    while not all(a.state()["agent"]["stats"]["peers_linked"] == 1 for a in agents):
        if time.monotonic() > deadline:
            raise RuntimeError("the nodes never linked")
        time.sleep(0.1)


def latency(workdir: str, trials: int, sync: float) -> dict:
    config = write_config(workdir, sync)
    n1 = Agent(workdir, config, "n1")
    n2 = Agent(workdir, config, "n2")
    holder = None
    try:
        wait_linked(n1, n2)
        url = f"sqlite:///{workdir}/lat.db?plugin=connmon&connmon_socket={n1.socket}&connmon_program_name=holder"
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, cwd=ROOT)
        assert holder.stdout.readline().strip() == "ready"
        results: dict[str, list[float]] = {"local": [], "peer": []}
        rng = random.Random(7)
        for _ in range(trials):
            # A checkout at a random point of the report and sync intervals
            # (waiting for the last change to show would otherwise lock the
            # trials to just before a report).
            time.sleep(rng.uniform(0.0, 2.0))
            for op, want in (("out", 1), ("in", 0)):
                holder.stdin.write(op + "\n")
                holder.stdin.flush()
                assert holder.stdout.readline().strip() == "done"
                t0 = time.monotonic()
                seen: dict[str, float] = {}
                while len(seen) < 2:
                    for name, agent in (("local", n1), ("peer", n2)):
                        if name not in seen and checked_out_on(agent, "host-n1") == want:
                            seen[name] = time.monotonic() - t0
                    if time.monotonic() - t0 > 20:
                        raise RuntimeError(f"the change never reached {'n1' if 'local' not in seen else 'n2'}")
                    time.sleep(0.02)
                if op == "out":
                    for name, took in seen.items():
                        results[name].append(took)
        return {"sync_interval": sync, "trials": trials,
                **{name: {"median_s": round(statistics.median(r), 3), "max_s": round(max(r), 3),
                          "min_s": round(min(r), 3)} for name, r in results.items()}}
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
            for s in (holder.stdin, holder.stdout):
                s.close()
        n1.stop()
        n2.stop()


def bandwidth(workdir: str, procs: int, duration: float) -> dict:
    config = write_config(workdir, 1.0)
    n1 = Agent(workdir, config, "n1", ["--trust-hello-pid"])
    n2 = Agent(workdir, config, "n2")
    gen = None
    try:
        wait_linked(n1, n2)
        code = ("import sys; sys.path.insert(0, %r); from bench_agent_ingest import generator; "
                "generator(%r, 100000, %d, %f, 'busy')" % (HERE, n1.socket, procs, duration + 60))
        gen = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True, cwd=ROOT)
        assert gen.stdout.readline().strip() == "ready"
        gen.stdin.write("warm\n")
        gen.stdin.flush()
        assert gen.stdout.readline().strip() == "warm"
        gen.stdin.write("go\n")
        gen.stdin.flush()
        deadline = time.monotonic() + 30
        while sum(1 for p in n2.state()["processes"] if p["host"] == "bench1") < procs:
            if time.monotonic() > deadline:
                raise RuntimeError("n2 never held every process of n1")
            time.sleep(0.2)
        time.sleep(2)  # past the first full sync
        s0 = n1.state()["agent"]["stats"]
        t0 = time.monotonic()
        time.sleep(duration)
        s1 = n1.state()["agent"]["stats"]
        elapsed = time.monotonic() - t0
        out = s1["peer_bytes_out"] - s0["peer_bytes_out"]
        full = s1["full_syncs_sent"] - s0["full_syncs_sent"]
        held = sum(1 for p in n2.state()["processes"] if p["host"] == "bench1")
        return {"processes": procs, "seconds": round(elapsed, 1), "bytes_per_s_per_peer": round(out / elapsed),
                "full_syncs_in_window": full, "held_on_peer": held}
    finally:
        if gen is not None:
            gen.stdin.close()
            gen.wait(30)
            gen.stdout.close()
        n1.stop()
        n2.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--skip-bandwidth", action="store_true")
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="cmbench", dir="/tmp")
    try:
        result = {"latency": latency(os.path.join(workdir, "lat"), args.trials, 1.0)}
        print(json.dumps(result["latency"]), flush=True)
        if not args.skip_bandwidth:
            result["bandwidth"] = bandwidth(os.path.join(workdir, "bw"), args.procs, args.duration)
            print(json.dumps(result["bandwidth"]), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
