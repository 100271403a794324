"""``connmon-agent start``: prepare the socket, serve until SIGTERM/SIGINT,
and leave nothing behind (socket, lock file, pid file) on the way out."""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from .. import protocol
from ..errors import ConnmonError
from .daemon import Readiness, daemonize, remove_pidfile, write_pidfile
from .instance import InstanceLock, bind_socket, ensure_private_dir, raise_nofile_limit
from .loops import loop_factory
from .loops import run as run_loop
from .options import AgentOptions
from .server import AgentServer

log = logging.getLogger("connmon.agent")


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s connmon-agent[%(process)d] %(levelname)s %(message)s"))
    root = logging.getLogger("connmon")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def run_agent(options: AgentOptions, *, daemon: bool = False, pidfile: str | None = None,
              log_file: str | None = None, log_level: str = "INFO") -> int:
    """Run an agent to completion; returns the exit status.

    With ``daemon`` the calling process returns 0 once the detached agent
    serves (printing its pid), or raises with the reason it could not start.
    """
    readiness: Readiness | None = None
    if daemon:
        result = daemonize(log_file)
        if isinstance(result, int):
            print(f"connmon agent started (pid {result}), socket {options.socket_path}")
            return 0
        readiness = result
        setup_logging(log_level, None)  # stderr is the log file (or /dev/null) now
    else:
        setup_logging(log_level, log_file)
    try:
        return _run(options, pidfile, readiness)
    except ConnmonError as err:
        if readiness is not None:
            log.error("%s", err)
            readiness.fail(str(err))
            return 1
        raise
    except BaseException as err:
        if readiness is not None:
            log.exception("agent failed")
            readiness.fail(f"{type(err).__name__}: {err}")
            return 1
        raise


def _run(options: AgentOptions, pidfile: str | None, readiness: Readiness | None) -> int:
    limit = raise_nofile_limit()
    path = options.socket_path
    ensure_private_dir(os.path.dirname(path))
    lock = InstanceLock(path)
    lock.acquire()
    sock = None
    inode = None
    try:
        sock = bind_socket(path)
        inode = os.lstat(path).st_ino
        if pidfile:
            write_pidfile(pidfile)
        log.info("connmon agent pid %d listening on %s (open files limit %d)", os.getpid(), path, limit)
        if options.trust_hello_pid:
            log.warning("--trust-hello-pid: reporters are identified by what they claim (benchmarks only)")
        log.info("event loop: %s; JSON decoder: %s", loop_factory()[0], protocol.json_decoder())
        run_loop(_serve(options, sock, readiness))
        sock = None  # closed by the server
        log.info("stopped")
        return 0
    finally:
        if sock is not None:
            sock.close()
        try:
            if inode is not None and os.lstat(path).st_ino == inode:
                os.unlink(path)
        except FileNotFoundError:
            pass
        if pidfile:
            remove_pidfile(pidfile)
        lock.release()


async def _serve(options: AgentOptions, sock: object, readiness: Readiness | None) -> None:
    loop = asyncio.get_running_loop()
    server = AgentServer(options, loop)
    await server.start(sock)  # type: ignore[arg-type]
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if readiness is not None:
        readiness.ready()
    try:
        await stop.wait()
        log.info("signal received; shutting down")
    finally:
        await server.close()
