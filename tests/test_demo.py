"""``connmon-agent demo``: the README's main job, run as a user would."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import psutil


def demo_processes() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "connmon-demo-" in cmd:
            found.append(p)
    return found


def test_demo_shows_every_worker_and_cleans_up_after_itself():
    r = subprocess.run(
        [sys.executable, "-m", "connmon_agent", "demo", "--plain", "--duration", "8"],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    # every worker shows up while the demo runs (each view is a full table)
    for program in ("demo-web", "demo-reports", "demo-burst", "demo-forker", "demo-cron"):
        assert program in r.stdout, r.stdout[-3000:]
    # the private socket lives in the demo's own directory, removed at the end
    sock = re.search(r" at (/\S+/agent\.sock)", r.stdout).group(1)
    import os

    assert not os.path.exists(os.path.dirname(sock))
    time.sleep(0.2)
    assert demo_processes() == []


def test_ctrl_c_stops_everything_the_demo_started():
    p = subprocess.Popen(
        [sys.executable, "-m", "connmon_agent", "demo", "--plain"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        # wait until the workers are up and reported
        deadline = time.monotonic() + 20
        seen = ""
        while "demo-web" not in seen and time.monotonic() < deadline:
            seen += p.stdout.readline()
        assert "demo-web" in seen
        assert len(demo_processes()) >= 6
        p.send_signal(signal.SIGINT)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
    time.sleep(0.2)
    assert demo_processes() == []
