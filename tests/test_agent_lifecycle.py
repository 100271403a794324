"""Starting, refusing, replacing and stopping agents: real processes, real
sockets and files in private temporary directories."""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys

import pytest


AGENT = [sys.executable, "-m", "connmon_agent"]


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AGENT, *args], capture_output=True, text=True, timeout=timeout)


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def test_socket_directory_is_created_private(agent):
    mode = stat.S_IMODE(os.stat(os.path.dirname(agent.socket)).st_mode)
    assert mode == 0o700
    assert stat.S_ISSOCK(os.lstat(agent.socket).st_mode)


def test_second_agent_on_the_same_path_is_refused(agent):
    r = run("start", "--socket", agent.socket)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert lines == [f"connmon-agent start: error: an agent is already running at {agent.socket} (pid {agent.proc.pid})"]
    assert agent.state()["agent"]["pid"] == agent.proc.pid  # the first one is untouched


def test_stale_socket_of_a_crashed_agent_is_replaced(agent_factory, short_tmp):
    first = agent_factory()
    first.kill()  # SIGKILL: socket and lock file stay behind
    assert os.path.exists(first.socket)
    second = agent_factory(directory=first.dir)
    assert second.state()["agent"]["pid"] == second.proc.pid
    assert second.stop() == 0


def test_left_over_socket_file_nobody_listens_on_is_replaced(agent_factory, short_tmp):
    a = agent_factory(start=False)
    os.makedirs(os.path.dirname(a.socket), mode=0o700)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(a.socket)
    s.close()  # the file stays, nothing listens: connection refused
    a.start()
    assert a.state()["agent"]["pid"] == a.proc.pid


def test_a_regular_file_at_the_socket_path_is_never_deleted(agent_factory):
    a = agent_factory(start=False)
    os.makedirs(os.path.dirname(a.socket), mode=0o700)
    with open(a.socket, "w") as f:
        f.write("precious")
    r = run("start", "--socket", a.socket)
    assert r.returncode == 2
    assert "exists and is not a socket" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    with open(a.socket) as f:
        assert f.read() == "precious"


@pytest.mark.parametrize("mode", [0o755, 0o770, 0o701])
def test_group_or_other_accessible_socket_directory_is_refused(agent_factory, mode):
    a = agent_factory(start=False)
    d = os.path.dirname(a.socket)
    os.makedirs(d)
    os.chmod(d, mode)
    r = run("start", "--socket", a.socket)
    assert r.returncode == 2
    assert f"chmod 700 {d}" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.path.exists(a.socket)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_shuts_down_cleanly_and_removes_the_socket(agent, sig):
    lock = agent.socket + ".lock"
    assert os.path.exists(lock)
    agent.signal(sig)
    assert agent.proc.wait(10) == 0
    assert not os.path.exists(agent.socket)
    assert not os.path.exists(lock)
    assert "Traceback" not in agent.read_log()


def test_daemon_start_status_and_stop(short_tmp):
    sock = os.path.join(short_tmp, "d", "agent.sock")
    log = os.path.join(short_tmp, "daemon.log")
    pidfile = os.path.join(short_tmp, "d", "agent.pid")
    r = run("start", "--daemon", "--socket", sock, "--log-file", log)
    pid = None
    try:
        assert r.returncode == 0, r.stderr
        pid = int(read(pidfile))
        assert f"(pid {pid})" in r.stdout
        # Double fork: a new session, and not its leader (cannot regain a tty).
        assert os.getsid(pid) not in (os.getsid(0), pid)
        st = run("status", "--json", "--socket", sock)
        assert st.returncode == 0 and f'"pid": {pid}' in st.stdout
        again = run("start", "--daemon", "--socket", sock)
        assert again.returncode == 1 and f"already running at {sock} (pid {pid})" in again.stderr

        stop = run("stop", "--socket", sock)
        assert stop.returncode == 0, stop.stderr
        assert f"(pid {pid}) stopped" in stop.stdout
        # stop returned only once the daemon was gone (or a zombie awaiting init).
        assert not os.path.exists(f"/proc/{pid}") or read(f"/proc/{pid}/stat").split()[2] == "Z"
        pid = None
        assert not os.path.exists(sock) and not os.path.exists(pidfile)
        assert "listening on" in read(log)

        again = run("stop", "--socket", sock)
        assert again.returncode == 1
        assert again.stderr.strip().splitlines() == [
            f"connmon-agent stop: error: no connmon agent at {sock} (not running: no pid file at {pidfile})"
        ]
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGKILL)


def test_daemon_that_cannot_start_reports_why(short_tmp):
    d = os.path.join(short_tmp, "open")
    os.makedirs(d)
    os.chmod(d, 0o755)
    r = run("start", "--daemon", "--socket", os.path.join(d, "agent.sock"))
    assert r.returncode == 1
    assert "accessible to group/other" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_open_files_limit_is_raised(agent):
    import resource

    import psutil

    soft, hard = psutil.Process(agent.proc.pid).rlimit(resource.RLIMIT_NOFILE)
    assert soft == hard
