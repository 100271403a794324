"""Agent ingest benchmark: N simulated reporting processes, one report a second each.

Starts a real agent subprocess (``start --trust-hello-pid``: the one
benchmark-only switch, which takes each connection's identity from its
hello so that a few load-generator processes can stand in for thousands of
processes; the per-report path is the real one), opens N Unix connections
from a couple of generator processes, each sending a realistic report
(2 pools, a few checkouts, a full histogram; deltas with a full report
every ``protocol.FULL_EVERY``) once a second for ``--duration`` seconds, and
measures the agent's CPU % (its cpu_times delta), µs of agent CPU per
report ingested (from the agent's ``stats.reports``), its RSS, and the time
of one ``connmon-agent status --json`` at that size.

    .venv/bin/python benchmarks/bench_agent_ingest.py [--sizes 1000,10000] [--duration 20]

Targets: 10,000 processes under 25 % of one core, RSS <= 150 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from connmon_agent import protocol  # noqa: E402
from connmon_agent.query import fetch_state  # noqa: E402

BOUNDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]


def realistic_pool(i: int, seq: int) -> dict:
    target = f"mysql+pymysql://nova@db{i}:3306/nova"
    return {
        "id": str(i),
        "name": f"Engine({target})",
        "target": target,
        "config": {"class": "QueuePool", "size": 5, "max_overflow": 10, "timeout": 30.0, "recycle": 3600, "pre_ping": True},
        "gauges": {"checked_out": 2, "checked_in": 3, "connections": 5, "detached": 0, "overflow": 0, "waiters": 0},
        "counters": {name: 1000 * seq + k for k, name in enumerate(protocol.COUNTERS)},
        "wait": {"sum": 0.0123, "max": 0.002},
        "checkouts": [
            {"id": 100 * seq + j, "age": 0.05 + 0.37 * j, "holder": "GET /v2.1/servers/{server_id}", "kind": "request",
             "where": "nova/api/openstack/compute/servers.py:421 in show"}
            for j in range(3)
        ],
        "checkouts_total": 3,
        "hold": {"bounds": BOUNDS, "counts": [seq * 3 + k for k in range(len(BOUNDS) + 1)], "sum": 123.4 + seq, "count": 2000 + seq},
    }


def report_frames() -> list[bytes]:
    """One frame per seq in a FULL_EVERY cycle: a full report, then deltas."""
    frames = []
    for seq in range(protocol.FULL_EVERY):
        msg = {"t": "report", "seq": seq, "full": seq == 0, "program": "nova-api", "dropped": 0, "gone": [],
               "pools": [realistic_pool(1, seq), realistic_pool(2, seq)]}
        frames.append(protocol.encode(msg))
    return frames


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def generator(path: str, first_pid: int, count: int, duration: float) -> None:
    """Run as a subprocess: ``count`` connections, a report a second each."""
    raise_nofile()
    socks = []
    for k in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(protocol.encode(protocol.hello("reporter", program="nova-api", host=f"bench{first_pid // 100000}",
                                                 pid=first_pid + k, interval=1.0)))
        socks.append(s)
    for s in socks:  # every welcome, so all are registered before the clock starts
        s.settimeout(30)
        head = s.recv(4, socket.MSG_WAITALL)
        (n,) = protocol.HEADER.unpack(head)
        s.recv(n, socket.MSG_WAITALL)
        s.settimeout(None)
    print("ready", flush=True)
    sys.stdin.readline()  # "go": every generator starts at once
    frames = report_frames()
    slices = 20
    start = time.monotonic()
    sent = 0
    tick = 0
    # Runs until its stdin closes (the benchmark is done) or ``duration`` passes.
    import select

    while time.monotonic() - start < duration and not select.select([sys.stdin], [], [], 0)[0]:
        frame = frames[tick % len(frames)]
        for sl in range(slices):
            for s in socks[sl::slices]:
                s.sendall(frame)
                sent += 1
            wake = start + tick + (sl + 1) / slices
            delay = wake - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        tick += 1
    print(json.dumps({"sent": sent}), flush=True)
    for s in socks:
        s.close()


def agent_cpu(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def run_size(n: int, duration: float, generators: int, workdir: str) -> dict:
    path = os.path.join(workdir, f"run{n}", "agent.sock")
    log = open(os.path.join(workdir, f"agent{n}.log"), "wb")
    agent = subprocess.Popen([sys.executable, "-m", "connmon_agent", "start", "--socket", path,
                              "--trust-hello-pid", "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT,
                             cwd=os.path.dirname(HERE))
    gens: list[subprocess.Popen] = []
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                fetch_state(path, timeout=1)
                break
            except Exception:
                if time.monotonic() > deadline or agent.poll() is not None:
                    raise RuntimeError("agent did not start")
                time.sleep(0.05)
        per = n // generators
        for g in range(generators):
            gens.append(subprocess.Popen([sys.executable, __file__, "--generate", path, str((g + 1) * 100000), str(per),
                                          str(duration + 120)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for g in gens:
            assert g.stdout is not None and g.stdout.readline().strip() == "ready"
        proc = psutil.Process(agent.pid)
        # Every process is connected (and has no pools yet): this snapshot is
        # cheap, so the window below holds nothing but ingest.
        s0 = fetch_state(path, timeout=60)
        c0, t0 = agent_cpu(proc), time.monotonic()
        for g in gens:
            assert g.stdin is not None
            g.stdin.write("go\n")
            g.stdin.flush()
        time.sleep(duration)
        c1, t1 = agent_cpu(proc), time.monotonic()
        rss_ingest = proc.memory_info().rss  # before any big snapshot was built
        s1 = fetch_state(path, timeout=60)
        fetch_s = time.monotonic() - t1
        rss = proc.memory_info().rss
        reports = s1["agent"]["stats"]["reports"] - s0["agent"]["stats"]["reports"]
        ts = time.monotonic()
        out = subprocess.run([sys.executable, "-m", "connmon_agent", "status", "--json", "--socket", path],
                             capture_output=True, cwd=os.path.dirname(HERE), timeout=120)
        status_time = time.monotonic() - ts
        assert out.returncode == 0, out.stderr
        status = json.loads(out.stdout)
        for g in gens:
            assert g.stdin is not None
            g.stdin.close()
            g.wait(60)
        return {
            "n": n,
            "tracked": status["totals"]["processes"],
            "reports_per_s": reports / (t1 - t0),
            "cpu_pct": 100 * (c1 - c0) / (t1 - t0),
            "us_per_report": 1e6 * (c1 - c0) / max(reports, 1),
            "rss_mb": rss / 2**20,
            "rss_ingest_mb": rss_ingest / 2**20,
            "status_s": status_time,
            "fetch_s": fetch_s,
            "status_mb": len(out.stdout) / 2**20,
            "bad_frames": status["agent"]["stats"]["bad_frames"],
        }
    finally:
        for g in gens:
            if g.poll() is None:
                g.kill()
            g.wait()
            if g.stdin and not g.stdin.closed:
                g.stdin.close()
            if g.stdout:
                g.stdout.close()
        agent.send_signal(signal.SIGTERM)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        log.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generator(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--generators", type=int, default=2)
    args = ap.parse_args()
    raise_nofile()
    workdir = tempfile.mkdtemp(prefix="cmb", dir="/tmp")
    try:
        rows = [run_size(int(n), args.duration, args.generators, workdir) for n in args.sizes.split(",")]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'processes':>9} {'tracked':>8} {'reports/s':>10} {'agent CPU %':>11} {'µs/report':>10} "
          f"{'RSS MB':>7} {'RSS MB after status':>19} {'fetch_state':>11} {'status --json':>14} {'JSON MB':>8}")
    for r in rows:
        print(f"{r['n']:>9} {r['tracked']:>8} {r['reports_per_s']:>10.0f} {r['cpu_pct']:>11.1f} {r['us_per_report']:>10.1f} "
              f"{r['rss_ingest_mb']:>7.1f} {r['rss_mb']:>19.1f} {r['fetch_s']:>10.2f}s {r['status_s']:>13.2f}s {r['status_mb']:>8.1f}")
    big = rows[-1]
    print(f"target at {big['n']}: CPU < 25 % -> {'met' if big['cpu_pct'] < 25 else 'MISSED'}; "
          f"RSS <= 150 MB -> {'met' if big['rss_ingest_mb'] <= 150 else 'MISSED'} while ingesting, "
          f"{'met' if big['rss_mb'] <= 150 else 'MISSED'} after two snapshots")


if __name__ == "__main__":
    main()
