"""``--daemon``, the pid file, and ``connmon-agent stop``.

``daemonize()`` double-forks and detaches, but the command that ran
``start --daemon`` waits on a pipe until the daemon is serving (or has
failed, with the reason), so its exit status tells the truth.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import psutil

from ..errors import AgentUnavailable, ConnmonError
from .instance import lock_path, read_pid


def write_pidfile(path: str) -> None:
    """Write our pid to ``path`` atomically (mode 0644 within a 0700 dir)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def remove_pidfile(path: str) -> None:
    """Remove ``path`` if it still names this process."""
    if read_pid(path) == os.getpid():
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class Readiness:
    """The daemon's end of the pipe its launcher waits on."""

    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd

    def ready(self) -> None:
        self._say(f"ok {os.getpid()}")

    def fail(self, reason: str) -> None:
        self._say(f"error {reason}")

    def _say(self, text: str) -> None:
        if self._fd is not None:
            try:
                os.write(self._fd, text.encode("utf-8", "replace")[:4000])
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def daemonize(log_file: str | None) -> Readiness | int:
    """Detach into the background.

    Returns, in the launching process, the daemon's pid once it is serving
    (raising ConnmonError with the daemon's reason if it failed), and in the
    daemon a :class:`Readiness` to report through. Paths must be absolute:
    the daemon's working directory is ``/``.
    """
    r, w = os.pipe()
    first = os.fork()
    if first:
        os.close(w)
        chunks = []
        while True:
            chunk = os.read(r, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(r)
        os.waitpid(first, 0)
        word = b"".join(chunks).decode("utf-8", "replace")
        if word.startswith("ok "):
            return int(word[3:])
        if word.startswith("error "):
            raise ConnmonError(word[6:])
        where = f"; see {log_file}" if log_file else ""
        raise ConnmonError(f"the agent exited while starting{where}")
    os.close(r)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    out = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600) if log_file else null
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    for fd in {null, out}:
        if fd > 2:
            os.close(fd)
    return Readiness(w)


def _is_agent(proc: psutil.Process) -> bool:
    try:
        return any("connmon" in part for part in proc.cmdline())
    except psutil.Error:
        return False


def stop_agent(socket_path: str, pidfile: str, timeout: float = 10.0) -> int:
    """SIGTERM the agent named by ``pidfile`` (else the socket's lock file)
    and wait for it to exit; returns its pid."""
    pid = read_pid(pidfile) or read_pid(lock_path(socket_path))
    if pid is None:
        raise AgentUnavailable(socket_path, f"not running: no pid file at {pidfile}")
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        raise AgentUnavailable(socket_path, f"not running: pid {pid} from {pidfile} is gone") from None
    if not _is_agent(proc):
        raise ConnmonError(f"pid {pid} (from {pidfile}) is not a connmon agent; remove the stale pid file")
    try:
        proc.send_signal(signal.SIGTERM)
    except psutil.NoSuchProcess:
        return pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return pid
        except psutil.NoSuchProcess:
            return pid
        time.sleep(0.05)
    raise ConnmonError(f"agent pid {pid} did not stop within {timeout:g}s")
