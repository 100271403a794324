"""The reporter's socket to the agent: a non-blocking Unix stream.

Sockets only; the frames come from :mod:`connmon_agent.protocol`. Used by
the reporter thread alone, never by an application thread.

Constraints: nothing here blocks (``connect`` on a Unix socket either
succeeds or fails at once; sends and receives are non-blocking; the
handshake wait is a bounded ``select`` in the reporter thread). At most one
frame waits unsent (:attr:`AgentLink.pending`): when the agent does not
read, the caller drops new reports instead of queueing them. Writes never
raise SIGPIPE (``MSG_NOSIGNAL``).
"""
from __future__ import annotations

import errno
import select
import socket
from typing import Any

from .. import protocol
from ..errors import AgentUnavailable, ProtocolError

#: Largest frame the agent may send us (welcome, error).
MAX_INBOUND_FRAME = 64 << 10

_SEND_FLAGS = getattr(socket, "MSG_NOSIGNAL", 0)


class AgentRefused(AgentUnavailable):
    """The agent answered the hello with an ``error`` (e.g. no common
    protocol version): retrying soon will not help."""


class AgentLink:
    """One connection to the agent at ``path``.

    ``state`` is ``"handshake"`` (hello sent, waiting for ``welcome``) or
    ``"ready"``; a link that failed raises and is closed by its owner.
    """

    __slots__ = ("path", "sock", "state", "decoder", "pending", "proto", "stalled_since")

    def __init__(self, path: str) -> None:
        self.path = path
        self.sock: socket.socket | None = None
        self.state = "closed"
        self.decoder = protocol.FrameDecoder(MAX_INBOUND_FRAME)
        self.pending = b""
        self.proto: int | None = None
        #: clock time since which pending bytes made no progress, or None
        self.stalled_since: float | None = None

    def open(self, hello: dict[str, Any]) -> None:
        """Connect and send ``hello``. Raises AgentUnavailable."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | getattr(socket, "SOCK_CLOEXEC", 0))
        try:
            sock.setblocking(False)
            sock.connect(self.path)
        except OSError as err:
            sock.close()
            raise AgentUnavailable(self.path, err.strerror or str(err)) from None
        self.sock = sock
        self.state = "handshake"
        self.pending = protocol.encode(hello)
        self.flush(0.0)

    def wait_readable(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for bytes from the agent."""
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            return True  # let poll() find the error
        return bool(readable)

    def poll(self) -> None:
        """Read whatever the agent sent; complete the handshake on
        ``welcome``. Raises AgentUnavailable when the agent closed the
        link or misbehaved, AgentRefused on an ``error`` reply."""
        sock = self.sock
        if sock is None:
            raise AgentUnavailable(self.path, "not connected")
        while True:
            try:
                data = sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                raise AgentUnavailable(self.path, err.strerror or str(err)) from None
            if not data:
                raise AgentUnavailable(self.path, "the agent closed the connection")
            try:
                messages = self.decoder.feed(data)
            except ProtocolError as err:
                raise AgentUnavailable(self.path, f"bad frame from the agent: {err}") from None
            for msg in messages:
                self._handle(msg)

    def _handle(self, msg: dict[str, Any]) -> None:
        t = msg.get("t")
        if t == "welcome" and self.state == "handshake":
            proto = msg.get("proto")
            self.proto = proto if type(proto) is int else protocol.PROTOCOL_VERSION
            self.state = "ready"
        elif t == "error":
            raise AgentRefused(self.path, f"{msg.get('code')}: {msg.get('message')}")
        # anything else is from a newer agent: ignored

    def flush(self, now: float) -> bool:
        """Send as much of the pending frame as the socket takes; True when
        nothing is left. Raises AgentUnavailable on a broken link."""
        if not self.pending:
            self.stalled_since = None
            return True
        sock = self.sock
        if sock is None:
            raise AgentUnavailable(self.path, "not connected")
        try:
            sent = sock.send(self.pending, _SEND_FLAGS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                sent = 0
            else:
                raise AgentUnavailable(self.path, err.strerror or str(err)) from None
        if sent:
            self.pending = self.pending[sent:]
            self.stalled_since = None if not self.pending else now
        elif self.stalled_since is None:
            self.stalled_since = now
        return not self.pending

    def send(self, frame: bytes, now: float) -> bool:
        """Queue ``frame`` and send what the socket takes. False (the frame
        is not taken: the caller counts it dropped) while an earlier frame
        is still unsent."""
        if not self.flush(now):
            return False
        self.pending = frame
        self.flush(now)
        return True

    def close(self) -> None:
        """Close the socket. In a forked child this only drops the child's
        copy of the descriptor: nothing is written, the parent's link is
        untouched."""
        sock, self.sock = self.sock, None
        self.state = "closed"
        self.pending = b""
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
