"""``connmon-agent demo``: a private agent, a handful of realistic worker
processes on SQLite, and the live view of them.

Everything it starts (the agent, the workers, their children) is stopped by
pid and every file it made is removed when it ends: on Ctrl-C, on
``--duration`` running out, or on an error.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

from .errors import ConnmonError

WORKERS = ("web", "web", "reports", "burst", "cron", "forker")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="SECS",
        help="stop by itself after SECS seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="print the status table every second instead of opening the console",
    )
    parser.add_argument(
        "--refresh", type=float, default=1.0, metavar="SECS", help="update interval (default 1)"
    )


class Demo:
    """Owns every process and file the demo makes."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="connmon-demo-")
        os.chmod(self.dir, 0o700)
        self.socket = os.path.join(self.dir, "agent.sock")
        self.db = os.path.join(self.dir, "demo.db")
        self.agent: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.log = open(os.path.join(self.dir, "workers.log"), "ab")

    def start(self) -> None:
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "connmon_agent", "start", "--socket", self.socket,
             "--log-file", os.path.join(self.dir, "agent.log")],
            stdout=self.log,
            stderr=self.log,
            start_new_session=True,
        )
        self._wait_for_agent()
        subprocess.run(
            [sys.executable, "-m", "connmon_agent.demo_worker", "setup", self.db, self.socket],
            check=True,
        )
        for i, role in enumerate(WORKERS):
            self._spawn(f"{role}-{i}", role)

    def _wait_for_agent(self, timeout: float = 10.0) -> None:
        from .query import fetch_state

        deadline = time.monotonic() + timeout
        while True:
            assert self.agent is not None
            if self.agent.poll() is not None:
                raise ConnmonError(f"the demo's agent exited with status {self.agent.returncode}")
            try:
                fetch_state(self.socket, timeout=1.0)
                return
            except ConnmonError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _spawn(self, key: str, role: str) -> None:
        self.workers[key] = subprocess.Popen(
            [sys.executable, "-m", "connmon_agent.demo_worker", role, self.db, self.socket],
            stdout=self.log,
            stderr=self.log,
            # Its own process group, so the forker's children are stopped with it.
            start_new_session=True,
        )

    def tend(self) -> None:
        """Restart workers that exited (the cron job exits by design)."""
        for key, proc in list(self.workers.items()):
            if proc.poll() is not None:
                self._spawn(key, key.rsplit("-", 1)[0])

    def stop(self) -> None:
        procs = list(self.workers.values())
        if self.agent is not None:
            procs.append(self.agent)
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    demo = Demo()
    # SIGTERM ends the demo as Ctrl-C does: everything is cleaned up.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        demo.start()
        if not args.plain and _console_available():
            return _run_console(demo, args)
        return _run_plain(demo, args)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        demo.stop()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _console_available() -> bool:
    import importlib.util

    return (
        sys.stdout.isatty()
        and importlib.util.find_spec("urwid") is not None
        and importlib.util.find_spec("connmon_agent.console.app") is not None
    )


def _run_console(demo: Demo, args: argparse.Namespace) -> int:
    import threading

    from .console.app import run_console

    stop = threading.Event()

    def tend() -> None:
        end = None if args.duration is None else time.monotonic() + args.duration
        while not stop.wait(0.5):
            demo.tend()
            if end is not None and time.monotonic() > end:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    t = threading.Thread(target=tend, name="connmon-demo-tend", daemon=True)
    t.start()
    try:
        return run_console(demo.socket, refresh=args.refresh)
    finally:
        stop.set()


def _run_plain(demo: Demo, args: argparse.Namespace) -> int:
    from .query import fetch_state
    from .agent.table import render as render_status

    end = None if args.duration is None else time.monotonic() + args.duration
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    while end is None or time.monotonic() < end:
        demo.tend()
        state = fetch_state(demo.socket, timeout=2.0)
        sys.stdout.write(clear + render_status(state) + "\n")
        sys.stdout.write("connmon demo: a private agent and 6 worker processes; Ctrl-C stops them all\n\n")
        sys.stdout.flush()
        time.sleep(args.refresh)
    return 0
