"""One agent per socket path, in a private directory.

* The socket's directory is created mode 0700; an existing one must belong
  to us and give nothing to group/other, or the agent refuses to start.
* ``flock`` on ``<socket>.lock`` makes "is another agent here?" race-free;
  the lock file holds the owner's pid.
* Under the lock, a socket file nobody answers on is stale (a crashed
  agent) and is replaced; one that answers means another agent: refused.
"""
from __future__ import annotations

import errno
import fcntl
import os
import resource
import socket
import stat
import struct

from ..errors import ConfigError, ConnmonError


class AlreadyRunning(ConnmonError):
    """Another agent serves (or is starting on) this socket path."""

    def __init__(self, path: str, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        who = f" (pid {pid})" if pid else ""
        super().__init__(f"an agent is already running at {path}{who}")


def ensure_private_dir(path: str) -> None:
    """Create ``path`` 0700, or check an existing one is ours and private."""
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as err:
        raise ConfigError(f"cannot create socket directory {path}: {err.strerror}") from err
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"socket directory {path} is not a directory")
    if st.st_uid != os.getuid():
        raise ConfigError(f"socket directory {path} is owned by uid {st.st_uid}, not {os.getuid()}; refusing to use it")
    if st.st_mode & 0o077:
        raise ConfigError(
            f"socket directory {path} is accessible to group/other (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"run 'chmod 700 {path}' or choose another --socket"
        )


def lock_path(socket_path: str) -> str:
    return socket_path + ".lock"


def read_pid(path: str) -> int | None:
    """The pid written in a pid or lock file, or None."""
    try:
        with open(path) as f:
            text = f.read(32).strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class InstanceLock:
    """The exclusive ``flock`` on ``<socket>.lock``, held for the agent's life."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.path = lock_path(socket_path)
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`AlreadyRunning`."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise AlreadyRunning(self.socket_path, read_pid(self.path) or answering_pid(self.socket_path)) from None
            # The previous owner may have unlinked the file between our open
            # and flock; then we hold a lock nobody else can see. Retry.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None


def answering_pid(socket_path: str, timeout: float = 1.0) -> int | None:
    """The pid of whatever listens on ``socket_path``, None if nothing answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(socket_path)
        raw = s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return struct.unpack("3i", raw)[0] or None
    except OSError:
        return None
    finally:
        s.close()


def bind_socket(path: str) -> socket.socket:
    """A listening Unix socket at ``path``; call with the instance lock held.

    A socket file left by a crashed agent (connection refused) is replaced;
    a live one raises :class:`AlreadyRunning`; anything else at ``path`` is
    never deleted.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(st.st_mode):
            raise ConfigError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(2.0)
            probe.connect(path)
        except OSError as err:
            if err.errno not in (errno.ECONNREFUSED, errno.ENOENT):
                raise ConfigError(f"cannot probe existing socket {path}: {err}") from err
            os.unlink(path)  # stale: its agent is gone
        else:
            raw = probe.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            raise AlreadyRunning(path, struct.unpack("3i", raw)[0] or None)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        old_umask = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        sock.listen(4096)
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {path}: {err.strerror}") from err
    return sock


def raise_nofile_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft
