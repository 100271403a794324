"""Where the agent's socket and pid file live by default.

The socket sits in a private directory (mode 0700, owned by the user) so no
other user can connect to the agent or replace its socket.
"""
from __future__ import annotations

import os

ENV_SOCKET = "CONNMON_SOCKET"


def default_runtime_dir() -> str:
    """``$XDG_RUNTIME_DIR/connmon``, else ``/tmp/connmon-<uid>``."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isdir(xdg):
        return os.path.join(xdg, "connmon")
    return os.path.join("/tmp", f"connmon-{os.getuid()}")


def default_socket_path() -> str:
    """``$CONNMON_SOCKET`` if set, else ``agent.sock`` in the runtime dir."""
    return os.environ.get(ENV_SOCKET) or os.path.join(default_runtime_dir(), "agent.sock")


def default_pidfile(socket_path: str) -> str:
    """The pid file of ``--daemon``: ``agent.pid`` beside the socket."""
    return os.path.join(os.path.dirname(os.path.abspath(socket_path)), "agent.pid")
