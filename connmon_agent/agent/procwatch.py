"""Who is on the other end of a Unix socket, and whether it is still alive.

The agent never trusts the pid a reporter claims: the kernel tells it the
peer's pid (``SO_PEERCRED``) and psutil its start time, and the pair
``(pid, start_time)`` names the process even after the pid is reused.

:class:`ProcWatch` notices dead processes even when their socket stays open
(a child inherited it): a pidfd per process where the kernel has them (the
event loop is woken the moment the process exits, at no polling cost), and
otherwise a once-a-second psutil sweep comparing start times.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from typing import Callable, Hashable

import psutil

log = logging.getLogger("connmon.agent.procwatch")

_UCRED = struct.Struct("3i")


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """``(pid, uid, gid)`` of the process that connected ``sock`` (Linux)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return _UCRED.unpack(raw)


def start_time(pid: int) -> float | None:
    """The start time (epoch seconds) of ``pid``, or None if it is gone."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None
    except psutil.Error:
        # AccessDenied cannot happen for /proc/PID/stat on Linux; be safe.
        return None


def is_same_process(pid: int, started: float) -> bool:
    """True while ``pid`` is alive and still the process that started at ``started``."""
    current = start_time(pid)
    return current is not None and abs(current - started) < 0.01


class ProcWatch:
    """Calls ``on_exit(key)`` once when a watched process has exited.

    Runs inside the agent's event loop and is not thread-safe. Memory and
    per-second cost are O(processes watched without a pidfd).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, on_exit: Callable[[Hashable], None], interval: float = 1.0) -> None:
        self._loop = loop
        self._on_exit = on_exit
        self._interval = interval
        self._pidfds: dict[Hashable, int] = {}
        self._polled: dict[Hashable, tuple[int, float]] = {}
        self._use_pidfd = hasattr(os, "pidfd_open")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = self._loop.create_task(self._sweep_forever())

    def watch(self, key: Hashable, pid: int, started: float) -> bool:
        """Start watching; False (and nothing watched) if the process is already gone."""
        self.unwatch(key)
        if self._use_pidfd:
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                return False
            except OSError as err:  # ENOSYS/EPERM (seccomp), EMFILE: fall back to polling
                log.debug("pidfd_open(%d) failed (%s); polling instead", pid, err)
            else:
                # The pidfd pins this very process; a reused pid would show
                # another start time here.
                if not is_same_process(pid, started):
                    os.close(fd)
                    return False
                self._pidfds[key] = fd
                self._loop.add_reader(fd, self._exited, key)
                return True
        if not is_same_process(pid, started):
            return False
        self._polled[key] = (pid, started)
        return True

    def unwatch(self, key: Hashable) -> None:
        fd = self._pidfds.pop(key, None)
        if fd is not None:
            self._loop.remove_reader(fd)
            os.close(fd)
        self._polled.pop(key, None)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        for key in list(self._pidfds):
            self.unwatch(key)
        self._polled.clear()

    @property
    def watched(self) -> int:
        return len(self._pidfds) + len(self._polled)

    def _exited(self, key: Hashable) -> None:
        self.unwatch(key)
        self._on_exit(key)

    def sweep(self) -> None:
        """Report every polled process that died or whose pid was reused."""
        dead = [key for key, (pid, started) in self._polled.items() if not is_same_process(pid, started)]
        for key in dead:
            self._polled.pop(key, None)
            self._on_exit(key)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                self.sweep()
            except Exception:  # never let the watcher die; the next sweep retries
                log.exception("process sweep failed")
