"""Agent ingest benchmark: N simulated reporting processes, one report a second each.

Starts a real agent subprocess (``start --trust-hello-pid``: the one
benchmark-only switch, which takes each connection's identity from its
hello so that a few load-generator processes can stand in for thousands of
processes; the per-report path is the real one), opens N Unix connections
from a couple of generator processes, and sends each connection's reports
once a second for ``--duration`` seconds. The reports are made by the real
client's report builder (``reporter.Channel.build``: a full report on
connecting and every ``protocol.FULL_EVERY`` reports, deltas carrying only
what changed in between) from simulated pools (2 per process) whose
counters, hold-time histogram, wait time, gauges and checkouts move like a
web process's (see ``MIXES``: "fleet", most processes busy, and "busy",
every pool of every process changing every second). It measures the
agent's CPU % (its cpu_times delta), µs of agent CPU per report ingested
(from the agent's ``stats.reports``), its RSS, and the time of one
``connmon-agent status --json`` at that size, for each agent runtime (event
loop + JSON decoder): ``uvloop+orjson``, connmon as installed (both are
dependencies where they have wheels), and ``asyncio+stdlib``, the fallback
without them.

    .venv/bin/python benchmarks/bench_agent_ingest.py [--sizes 1000,10000] [--duration 20]
        [--mixes fleet,busy] [--runtimes asyncio+stdlib,uvloop+orjson]

Targets: 10,000 processes under 25 % of one core, RSS <= 150 MB. The
"fleet" mix is the realistic one; "busy" (every pool of every process
changes every second) is the stress case.
"""
from __future__ import annotations

import argparse
import json
import os
import random
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
from connmon_agent.client.reporter import Channel  # noqa: E402
from connmon_agent.client.state import HOLD_BOUNDS  # noqa: E402
from connmon_agent.query import fetch_state  # noqa: E402

#: The simulated fleets: the share of seconds in which a pool is used (its
#: counters, hold-time histogram and wait time change), for each pool of a
#: process, by kind of process. "busy": every pool of every process is used
#: every second. "fleet": four processes in five are busy (their first pool
#: is used every second, their second one every other second) and one in
#: five is quiet (each pool used one second in ten).
MIXES = {
    "busy": [(1.0, (1.0, 1.0))],
    "fleet": [(0.8, (1.0, 0.5)), (0.2, (0.1, 0.1))],
}
#: In a second a pool is used, its set of checkouts (0 to 3 of them,
#: attributed to a request) is replaced with this probability, its number
#: of connections with the next.
CHECKOUT_CHURN = 0.3
CONNECTION_CHURN = 0.1
#: Distinct simulated processes (their reports differ); connections beyond
#: this share a variant at a different point of its cycle.
VARIANTS = 64
#: Reports per variant before it repeats (a multiple of FULL_EVERY).
CYCLE = 2 * protocol.FULL_EVERY

ROUTES = ["GET /v2.1/servers/{server_id}", "POST /v2.1/servers", "GET /v2.1/flavors/detail", "DELETE /v2.1/servers/{server_id}"]
WHERES = ["nova/api/openstack/compute/servers.py:421 in show", "nova/db/main/api.py:1834 in instance_get_all_by_filters",
          "nova/compute/api.py:2201 in _create_instance", "nova/objects/flavor.py:288 in get_all"]


class SimulatedPool:
    """One pool of a busy simulated process: the collector interface the
    real reporter's ``Channel.build`` reads (``id``, ``version``,
    ``snapshot()``), with state that moves like a busy web process's."""

    def __init__(self, rng: random.Random, index: int, activity: float = 1.0) -> None:
        self.rng = rng
        self.activity = activity
        self.id = str(index)
        self.version = 0
        target = f"mysql+pymysql://nova@db{index}:3306/nova"
        self.static = {
            "name": f"Engine({target})",
            "target": target,
            "config": {"class": "QueuePool", "size": 5, "max_overflow": 10, "timeout": 30.0, "recycle": 3600, "pre_ping": True},
        }
        self.counters = {name: rng.randrange(10 if name.startswith(("invalidated", "timeouts")) else 10_000)
                         for name in protocol.COUNTERS}
        self.connections = 5
        self.checkouts: list[dict] = []
        self.next_id = 1
        self.hold_counts = [rng.randrange(1000) for _ in range(len(HOLD_BOUNDS) + 1)]
        self.hold_sum = 100.0
        self.wait_sum = 0.01
        self.wait_max = 0.001

    def advance(self) -> None:
        """One second: used (with probability ``activity``) or idle."""
        rng = self.rng
        if rng.random() >= self.activity:
            for co in self.checkouts:
                co["age"] += 1.0
            return
        self.version += 1
        served = rng.randrange(20, 200)
        c = self.counters
        for name in ("checkouts", "checkins", "transactions", "commits"):
            c[name] += served
        c["rollbacks"] += rng.randrange(0, 5)
        if rng.random() < CONNECTION_CHURN:
            c["connects"] += 1
            c["disconnects"] += 1
            self.connections = rng.randrange(3, 8)
        for bucket in rng.sample(range(2, 10), 5):  # holds of ~2.5 ms to 0.5 s
            self.hold_counts[bucket] += served // 5
        self.hold_sum += served * 0.012
        self.wait_sum += rng.random() * 0.001
        if rng.random() < CHECKOUT_CHURN:
            self.checkouts = []
            for _ in range(rng.randrange(0, 4)):
                self.checkouts.append({"id": self.next_id, "age": rng.random(), "holder": rng.choice(ROUTES),
                                       "kind": "request", "thread": f"Thread-{rng.randrange(50)}", "where": rng.choice(WHERES)})
                self.next_id += 1
        else:
            for co in self.checkouts:
                co["age"] += 1.0

    def snapshot(self, now: float | None = None) -> dict:
        """A fresh dict, as the collector's snapshot is."""
        out = len(self.checkouts)
        connections = max(self.connections, out)
        snap = {
            "id": self.id,
            **self.static,
            "gauges": {"checked_out": out, "checked_in": connections - out, "connections": connections,
                       "detached": 0, "overflow": max(0, connections - 5), "waiters": 0},
            "counters": dict(self.counters),
            "wait": {"sum": round(self.wait_sum, 6), "max": self.wait_max},
            "checkouts": [dict(co, age=round(co["age"], 6)) for co in self.checkouts],
            "checkouts_total": out,
            "hold": {"bounds": list(HOLD_BOUNDS), "counts": list(self.hold_counts), "sum": round(self.hold_sum, 6),
                     "count": sum(self.hold_counts)},
        }
        return json.loads(json.dumps(snap))  # no object shared with the previous snapshot


def activities(v: int, mix: str) -> tuple[float, ...]:
    """The pools' activities of simulated process ``v`` in ``mix``."""
    x = (v + 0.5) / VARIANTS
    for share, pools in MIXES[mix]:
        if x < share:
            return pools
        x -= share
    return MIXES[mix][-1][1]


def variant_frames(v: int, mix: str) -> tuple[list[bytes], list[bytes]]:
    """One simulated process's ``CYCLE`` reports, made by the real client's
    report builder (``reporter.Channel.build``): the frame sent at each
    position (full every FULL_EVERY, deltas between), and a full report of
    the state at each position (sent once, on connecting, by a connection
    that starts its cycle right after that position)."""
    rng = random.Random(v)
    sims = [SimulatedPool(rng, i + 1, activity) for i, activity in enumerate(activities(v, mix))]
    ch = Channel("bench", "nova-api", 1.0)
    sent, fulls = [], []
    for pos in range(2 * CYCLE):  # the first lap only warms the state up
        for sim in sims:
            sim.advance()
        full = pos % protocol.FULL_EVERY == 0
        msg, versions, gone, snaps = ch.build(0.0, sims, full)
        msg["seq"] = pos
        ch.sent_ok(msg, versions, gone, snaps)
        if pos >= CYCLE:
            sent.append(protocol.encode(msg))
            whole = ch.build(0.0, sims, True)[0]
            whole["seq"] = pos
            fulls.append(protocol.encode(whole))
    return sent, fulls


def report_frames(mix: str) -> tuple[list[list[bytes]], list[list[bytes]]]:
    """Per variant: the frames of its cycle and the full frame of each position."""
    pairs = [variant_frames(v, mix) for v in range(VARIANTS)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def generator(path: str, first_pid: int, count: int, duration: float, mix: str) -> None:
    """Run as a subprocess: ``count`` connections, a report a second each."""
    raise_nofile()
    frames, fulls = report_frames(mix)
    # Connection k plays variant k % VARIANTS from its own point of the cycle,
    # so a tenth of the processes send their full report in any one second.
    plan = [(k % VARIANTS, (k // VARIANTS + 7 * k) % CYCLE) for k in range(count)]
    socks = []
    for k in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        s.sendall(protocol.encode(protocol.hello("reporter", program="nova-api", host=f"bench{first_pid // 100000}",
                                                 pid=first_pid + k, interval=1.0)))
        socks.append(s)
    for s, (v, start_at) in zip(socks, plan):  # every welcome, so all are registered before the clock starts
        s.settimeout(30)
        head = s.recv(4, socket.MSG_WAITALL)
        (n,) = protocol.HEADER.unpack(head)
        s.recv(n, socket.MSG_WAITALL)
        s.settimeout(None)
    print("ready", flush=True)
    sys.stdin.readline()  # "warm": every connection sends its first report
    for s, (v, start_at) in zip(socks, plan):
        # The real client's first report on a connection: the whole state.
        s.sendall(fulls[v][(start_at - 1) % CYCLE])
    print("warm", flush=True)
    sys.stdin.readline()  # "go": every generator starts at once
    slices = 20
    start = time.monotonic()
    sent = 0
    tick = 0
    # Runs until its stdin closes (the benchmark is done) or ``duration`` passes.
    import select

    while time.monotonic() - start < duration and not select.select([sys.stdin], [], [], 0)[0]:
        for sl in range(slices):
            for k in range(sl, count, slices):
                v, start_at = plan[k]
                socks[k].sendall(frames[v][(start_at + tick) % CYCLE])
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


def wait_idle(p: psutil.Process, timeout: float = 60.0) -> None:
    """Until the agent used under 5 ms of CPU in 0.3 s."""
    deadline = time.monotonic() + timeout
    last = agent_cpu(p)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = agent_cpu(p)
        if now - last < 0.005:
            return
        last = now
    raise RuntimeError("the agent never went idle")


def run_size(n: int, duration: float, generators: int, workdir: str, mix: str, runtime: str) -> dict:
    loop, decoder = runtime.split("+")
    path = os.path.join(workdir, f"run{n}{mix}{loop}{decoder}", "agent.sock")
    log = open(os.path.join(workdir, f"agent{n}{mix}{loop}{decoder}.log"), "wb")
    agent = subprocess.Popen([sys.executable, "-m", "connmon_agent", "start", "--socket", path,
                              "--trust-hello-pid", "--log-level", "WARNING"], stdout=log, stderr=subprocess.STDOUT,
                             cwd=os.path.dirname(HERE), env={**os.environ, "CONNMON_AGENT_LOOP": loop, "CONNMON_JSON": decoder})
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
                                          str(duration + 120), mix], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        for g in gens:
            assert g.stdout is not None and g.stdout.readline().strip() == "ready"
        proc = psutil.Process(agent.pid)
        # Every process is connected (and has no pools yet): this snapshot is
        # cheap, so the window below holds nothing but ingest.
        s0 = fetch_state(path, timeout=60)
        for g in gens:
            assert g.stdin is not None and g.stdout is not None
            g.stdin.write("warm\n")
            g.stdin.flush()
        for g in gens:
            assert g.stdout is not None and g.stdout.readline().strip() == "warm"
        wait_idle(proc)  # every first (full) report ingested
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
        # The window ingested everything since s0 but the n first reports.
        reports = s1["agent"]["stats"]["reports"] - s0["agent"]["stats"]["reports"] - n
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
            "mix": mix,
            "loop": runtime,
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
            "ignored_pools": status["agent"]["stats"].get("ignored_pools", 0),
            "whole": sum(len(p["pools"]) == 2 and all("hold" in pool and "target" in pool for pool in p["pools"])
                         for p in status["processes"]),
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


def describe_mix(mix: str) -> str:
    frames, fulls = report_frames(mix)
    sizes = [len(f) for fs in frames for f in fs]
    pools = [len(json.loads(f[4:])["pools"]) for fs in frames for pos, f in enumerate(fs) if pos % protocol.FULL_EVERY]
    kinds = ", ".join(f"{share:.0%} of processes using their pools " + "/".join(f"{a:.0%}" for a in act) + " of seconds"
                      for share, act in MIXES[mix])
    return (f"mix {mix!r}: {kinds}; "
            f"{sum(pools) / len(pools):.2f} pools per delta; mean {sum(sizes) / len(sizes):.0f} bytes a report "
            f"(full {sum(len(f) for fs in fulls for f in fs) // (len(fulls) * CYCLE)})")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        generator(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000")
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--generators", type=int, default=2)
    ap.add_argument("--mixes", default="fleet,busy", help=f"comma-separated, of {', '.join(MIXES)}")
    ap.add_argument("--runtimes", default=None, help="comma-separated LOOP+DECODER of the agent, LOOP one of asyncio, "
                                                     "uvloop and DECODER one of stdlib, orjson (default: asyncio+stdlib, "
                                                     "and uvloop+orjson when both are installed)")
    args = ap.parse_args()
    raise_nofile()
    loops = (args.runtimes.split(",") if args.runtimes
             else ["asyncio+stdlib"] + (["uvloop+orjson"] if _has("uvloop") and _has("orjson") else []))
    for runtime in loops:
        if runtime.count("+") != 1 or runtime.split("+")[0] not in ("asyncio", "uvloop") \
                or runtime.split("+")[1] not in ("stdlib", "orjson"):
            ap.error(f"--runtimes: {runtime!r} is not LOOP+DECODER (asyncio|uvloop + stdlib|orjson)")
    mixes = args.mixes.split(",")
    print(f"simulated reports, made by the real client's report builder (Channel.build): 2 pools per process; "
          f"a pool used in a second changes its counters, hold-time histogram and wait time, replaces its checkouts "
          f"with probability {CHECKOUT_CHURN:.0%}; a full report every {protocol.FULL_EVERY}")
    for mix in mixes:
        print("  " + describe_mix(mix))
    workdir = tempfile.mkdtemp(prefix="cmb", dir="/tmp")
    try:
        rows = [run_size(int(n), args.duration, args.generators, workdir, mix, loop)
                for mix in mixes for loop in loops for n in args.sizes.split(",")]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'mix':>6} {'runtime':>14} {'processes':>9} {'reports/s':>10} {'agent CPU %':>11} {'µs/report':>10} "
          f"{'RSS MB':>7} {'RSS MB after status':>19} {'fetch_state':>11} {'status --json':>14} {'JSON MB':>8}")
    for r in rows:
        print(f"{r['mix']:>6} {r['loop']:>14} {r['n']:>9} {r['reports_per_s']:>10.0f} {r['cpu_pct']:>11.1f} {r['us_per_report']:>10.1f} "
              f"{r['rss_ingest_mb']:>7.1f} {r['rss_mb']:>19.1f} {r['fetch_s']:>10.2f}s {r['status_s']:>13.2f}s {r['status_mb']:>8.1f}")
    for r in rows:
        if r["bad_frames"] or r["ignored_pools"] or r["whole"] != r["n"] or r["tracked"] != r["n"]:
            print(f"WRONG ({r['mix']}, {r['loop']}, {r['n']}): bad_frames {r['bad_frames']}, ignored_pools "
                  f"{r['ignored_pools']}, {r['whole']} of {r['n']} processes whole, {r['tracked']} tracked")
    for r in rows:
        if r["n"] >= 10_000:
            print(f"target at {r['n']} ({r['mix']}, {r['loop']}{RUNTIME_NOTES.get(r['loop'], '')}): "
                  f"CPU < 25 % -> {'met' if r['cpu_pct'] < 25 else 'MISSED'}; "
                  f"RSS <= 150 MB -> {'met' if r['rss_ingest_mb'] <= 150 else 'MISSED'} while ingesting, "
                  f"{'met' if r['rss_mb'] <= 150 else 'MISSED'} after two snapshots")


#: What each runtime is, in the target lines.
RUNTIME_NOTES = {"uvloop+orjson": ": connmon as installed", "asyncio+stdlib": ": fallback without uvloop and orjson"}


def _has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
