"""Time of one full console refresh with 10,000 processes in the state.

One refresh is what the console does when the agent pushes a state:
ingest it (records, rates, history), build the table of the current view
(aggregate, filter, sort) and render the whole screen to a canvas (what
urwid then diffs onto the terminal). Target: under 100 ms to the screen.
After the draw the console frees the previous state; that time is printed
too, and the CPU figure covers both.

Every refresh gets a state it has never seen, decoded from JSON as the
console's feed decodes it (fresh objects: nothing can be recognised by
identity), in which every process's counters and most gauges changed.
The decoding, done by the console's feed thread (holding the GIL, so keys
wait for it), is timed apart: with each JSON decoder, with the cyclic
garbage collector paused as the feed does (``query.gc_paused``) and, for
comparison, running.

    python benchmarks/bench_console_render.py [--processes 10000] [--pools 1] [--repeat 10]
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from typing import Any

import urwid

from connmon_agent import protocol
from connmon_agent.console.app import ConsoleApp
from connmon_agent.protocol import COUNTERS, GAUGES
from connmon_agent.query import gc_paused

TARGETS = [f"mysql+pymysql://app@db{i}:3306/app" for i in range(4)]


def make_state(n: int, pools: int, at: float, tick: int) -> dict[str, Any]:
    procs = []
    for i in range(n):
        host = f"web{i % 100:03d}"
        program = f"service-{i % 25}"
        pl = []
        for j in range(pools):
            out = (i + j + tick) % 4
            gauges = dict.fromkeys(GAUGES, 0)
            gauges.update(checked_out=out, checked_in=2, connections=out + 2)
            counters = dict.fromkeys(COUNTERS, 0)
            counters.update(checkouts=1000 + i * 3 + tick * (1 + i % 7), checkins=1000 + i * 3 + tick)
            pl.append({
                "id": str(j + 1), "name": f"Engine({TARGETS[(i + j) % 4]})",
                "target": TARGETS[(i + j) % 4],
                "config": {"class": "QueuePool", "size": 5, "max_overflow": 10, "timeout": 30.0,
                           "recycle": 3600, "pre_ping": True},
                "gauges": gauges, "counters": counters, "wait": {"sum": 0.0, "max": 0.0},
                "checkouts": [{"id": k, "age": 0.1 * k + (i % 50), "holder": f"GET /api/{k}",
                               "kind": "request", "where": "app/views.py:42 in handler"}
                              for k in range(out)],
                "checkouts_total": out,
                "hold": {"bounds": [0.001, 0.01, 0.1, 1.0], "counts": [1, 2, 3, 4, 0],
                         "sum": 1.0, "count": 10},
            })
        procs.append({"host": host, "pid": 10000 + i, "program": program, "started": 1.7e9 + i,
                      "last_report_age": 0.3, "dropped": 0, "stale": False, "pools": pl})
    procs.sort(key=lambda p: (p["host"], p["program"], p["pid"]))
    hosts = sorted({p["host"] for p in procs})
    return {"schema": 1, "generated_at": at,
            "agent": {"host": "web000", "pid": 1, "version": "0.1.0", "socket": "/x", "uptime": 60.0,
                      "stats": {}},
            "totals": {}, "hosts": [{"host": h, "stale": False, "last_heard_age": 0.2} for h in hosts],
            "programs": [], "databases": [], "processes": procs}


class Screen(urwid.BaseScreen):
    """A started screen of a fixed size; drawing renders the whole canvas
    (what urwid's raw display then diffs onto the terminal)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = size
        self._started = True
        self.drawn = 0

    def get_cols_rows(self) -> tuple[int, int]:
        return self.size

    def draw_screen(self, size: tuple[int, int], canvas: Any) -> None:
        assert canvas.rows() == size[1]
        self.drawn += 1


def decode_times(body: bytes, repeat: int) -> None:
    """Median time to decode one state in the feed thread, per decoder,
    while the previous one is held (as the console holds the state shown)."""
    shown = protocol.decode_body(body)  # noqa: F841 - held on purpose
    print(f"decoding one state ({len(body) / 2**20:.0f} MB) in the feed thread, median of {repeat}:")
    for decoder in ("stdlib", "orjson"):
        if decoder == "orjson" and not protocol.use_fast_json():
            continue
        if decoder == "stdlib":
            protocol.use_stdlib_json()
        row = []
        for paused in (True, False):
            times = []
            for _ in range(repeat):
                gc.collect()
                t0 = time.perf_counter()
                with gc_paused(paused):
                    state = protocol.decode_body(body)
                times.append((time.perf_counter() - t0) * 1000)
                del state
            row.append(statistics.median(times))
        print(f"  {decoder:<7} {row[0]:5.0f} ms (collector running: {row[1]:5.0f} ms)")
    protocol.use_stdlib_json()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--processes", type=int, default=10_000)
    ap.add_argument("--pools", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=10)
    args = ap.parse_args()
    # Each refresh decodes its own copy of one of these (as JSON text).
    states = [json.dumps(make_state(args.processes, args.pools, 1.7e9 + t, t)) for t in range(3)]
    decode_times(json.dumps({"t": "state", **json.loads(states[1])}).encode(), args.repeat)
    print(f"{args.processes} processes x {args.pools} pool(s), median of {args.repeat} refreshes:")
    for view, size in (("program", (200, 60)), ("host", (200, 60)), ("process", (200, 60)),
                       ("process", (80, 24)), ("pool", (200, 60)), ("database", (200, 60))):
        app = ConsoleApp("/x", feed_factory=None)
        app.make_loop(screen=Screen(size))
        app.handle_key(str(("program", "host", "database", "process", "pool").index(view) + 1))
        app.apply_state(json.loads(states[0]))
        shown, freed, cpu = [], [], []
        screen = app.loop.screen
        for r in range(args.repeat):
            state = json.loads(states[1 + r % 2])
            state["generated_at"] = 1.7e9 + 1 + r
            gc.collect()
            drawn = screen.drawn
            c0 = time.process_time()
            app.apply_state(state)            # ingest + table + widgets + draw, as in the console
            cpu.append((time.process_time() - c0) * 1000)
            shown.append(app.last_render_ms)
            freed.append(app.last_release_ms)
            assert screen.drawn == drawn + 1
        print(f"  {view:<8} {size[0]:>3}x{size[1]:<3} to screen: median {statistics.median(shown):5.1f} ms"
              f"  max {max(shown):5.1f} ms;  then freeing the previous state {statistics.median(freed):4.1f} ms"
              f"  (CPU of both, median {statistics.median(cpu):5.1f} ms)")


if __name__ == "__main__":
    main()
