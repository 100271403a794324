"""What ``?plugin=connmon`` costs an application.

Tight ``c = engine.connect(); c.close()`` loops on SQLite with a QueuePool,
each variant in interleaved rounds within one run (so CPU frequency and
noise hit all alike); medians per round and the ratio to the bare loop
(target: <= 1.25x). Then the p99 of single checkouts with the agent absent
and with an agent that stopped reading (SIGSTOP), against the bare loop.

Run: .venv/bin/python benchmarks/bench_plugin_overhead.py [--rounds N] [--ops N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from typing import Any, Callable

import sqlalchemy as sa

from connmon_agent import client
from connmon_agent.client import reporter

# A listener that answers the hello and then reads frames; SIGSTOP makes it
# an agent that accepted the reporter and stopped reading.
LISTENER = r"""
import os, socket, sys
from connmon_agent import protocol
path = sys.argv[1]
srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(8)
print("ready", flush=True)
conn, _ = srv.accept()
dec = protocol.FrameDecoder()
while True:
    data = conn.recv(65536)
    if not data:
        break
    for msg in dec.feed(data):
        if msg["t"] == "hello":
            conn.sendall(protocol.encode(protocol.welcome(1)))
"""


def loop(engine: sa.Engine, n: int, holder: bool = False) -> float:
    """Seconds per connect+close over ``n`` iterations."""
    ctx = client.holder("bench", kind="task") if holder else nullcontext()
    connect = engine.connect
    with ctx:
        t0 = time.perf_counter()
        for _ in range(n):
            c = connect()
            c.close()
        return (time.perf_counter() - t0) / n


def per_op(engine: sa.Engine, n: int) -> list[float]:
    """Seconds of each of ``n`` single connect+close calls."""
    out = []
    clock = time.perf_counter
    connect = engine.connect
    for _ in range(n):
        t0 = clock()
        c = connect()
        c.close()
        out.append(clock() - t0)
    return out


def p99(values: list[float]) -> float:
    values = sorted(values)
    return values[int(len(values) * 0.99) - 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--ops", type=int, default=5000)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="cmb", dir="/tmp")
    try:
        run(args, tmp)
    finally:
        reporter.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: str) -> None:
    db = f"sqlite:///{tmp}/bench.db"
    absent = os.path.join(tmp, "absent.sock")  # nobody listens here
    plug = f"{db}?plugin=connmon&connmon_socket={absent}&connmon_interval=1"
    qp = sa.pool.QueuePool
    engines = {
        "bare": sa.create_engine(db, poolclass=qp),
        "plugin (default: where off)": sa.create_engine(plug, poolclass=qp),
        "plugin, connmon_where=on": sa.create_engine(plug + "&connmon_where=on", poolclass=qp),
    }
    variants: dict[str, Callable[[], float]] = {
        name: (lambda e=e: loop(e, args.ops)) for name, e in engines.items()
    }
    variants["plugin (default) in holder()"] = lambda: loop(engines["plugin (default: where off)"], args.ops, holder=True)
    for f in variants.values():  # warm up: connections made, caches filled
        f()
    results: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, f in variants.items():
            results[name].append(f())
    base = statistics.median(results["bare"])
    print(f"connect()+close() on SQLite/QueuePool: {args.rounds} interleaved rounds x {args.ops} ops "
          f"(Python {sys.version.split()[0]}, SQLAlchemy {sa.__version__})")
    print(f"{'variant':32} {'median us':>10} {'ratio':>7}")
    for name, vals in results.items():
        med = statistics.median(vals)
        print(f"{name:32} {med * 1e6:10.2f} {med / base:7.2f}x")

    # p99 of single checkouts: bare, agent absent, agent stopped (SIGSTOP)
    n = max(args.ops * 4, 20000)
    stopped_sock = os.path.join(tmp, "stopped.sock")
    listener = subprocess.Popen([sys.executable, "-c", LISTENER, stopped_sock], stdout=subprocess.PIPE, text=True)
    held: list[Any] = []
    try:
        assert listener.stdout is not None
        listener.stdout.readline()
        stopped = sa.create_engine(
            f"{db}?plugin=connmon&connmon_socket={stopped_sock}&connmon_interval=0.05",
            poolclass=qp, pool_size=120,
        )
        # 100 held checkouts make every report ~15 kB: the stopped agent's
        # socket buffer fills within a second, then reports are dropped
        held = [stopped.connect() for _ in range(100)]
        r = reporter.current()
        deadline = time.monotonic() + 5
        while not (r and r.channels.get(stopped_sock) and r.channels[stopped_sock].link
                   and r.channels[stopped_sock].link.state == "ready"):
            if time.monotonic() > deadline:
                raise SystemExit("the listener never welcomed the reporter")
            time.sleep(0.05)
        ch = r.channels[stopped_sock]
        listener.send_signal(signal.SIGSTOP)
        deadline = time.monotonic() + 30
        while ch.dropped == 0 and time.monotonic() < deadline:
            held[0].close()
            held[0] = stopped.connect()  # a change, so every report is built
            time.sleep(0.05)
        cases = {"bare": engines["bare"], "agent absent": engines["plugin (default: where off)"],
                 "agent SIGSTOPped": stopped}
        for e in cases.values():
            per_op(e, 2000)
        rounds: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(5):
            for name, e in cases.items():
                rounds[name] += per_op(e, n // 5)
        print()
        print(f"single connect()+close(): {n} each, interleaved in 5 rounds")
        print(f"{'variant':32} {'median us':>10} {'p99 us':>8} {'p99 ratio':>10}")
        base99 = p99(rounds["bare"])
        for name, vals in rounds.items():
            print(f"{name:32} {statistics.median(vals) * 1e6:10.2f} {p99(vals) * 1e6:8.2f} {p99(vals) / base99:9.2f}x")
        link = ch.link
        print(f"stopped agent: {ch.dropped} reports dropped, {len(link.pending) if link else 0} bytes waiting "
              f"(at most one frame), application exceptions: 0")
    finally:
        for c in held:
            c.close()
        listener.send_signal(signal.SIGCONT)
        listener.kill()
        listener.wait()
        if listener.stdout:
            listener.stdout.close()


if __name__ == "__main__":
    main()
