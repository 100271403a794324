"""The reporter's socket to the agent: a non-blocking Unix stream, or TCP
to an agent elsewhere (:class:`TcpAgentLink`, authenticated).

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
import os
import select
import socket
import time
from typing import Any

from .. import auth, protocol
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
        while True:
            data = self._recv()
            if data is None:
                return
            try:
                messages = self.decoder.feed(data)
            except ProtocolError as err:
                raise AgentUnavailable(self.path, f"bad frame from the agent: {err}") from None
            for msg in messages:
                self._handle(msg)

    def _recv(self) -> bytes | None:
        """What the agent sent, or None when nothing is waiting. Raises
        AgentUnavailable when the link is closed or broken."""
        sock = self.sock
        if sock is None:
            raise AgentUnavailable(self.path, "not connected")
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as err:
            raise AgentUnavailable(self.path, err.strerror or str(err)) from None
        if not data:
            raise AgentUnavailable(self.path, "the agent closed the connection")
        return data

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


class TcpAgentLink(AgentLink):
    """One connection to an agent over TCP (``connmon_addr``, or a node of
    ``connmon_service``), authenticated with the shared secret when one is
    given (:mod:`connmon_agent.auth`): the hello carries a nonce, the
    agent's challenge is checked and answered, and every report is sealed.

    ``connect`` blocks the reporter thread for at most ``CONNECT_TIMEOUT``
    (never an application thread); everything after it is non-blocking
    like the Unix link. The hello names this process by host, pid and the
    time connmon first ran in this pid (TCP has no ``SO_PEERCRED``).
    """

    __slots__ = ("addr", "secret", "frames", "shake", "sealer", "opener")

    #: Longest wait for a TCP connect, in the reporter thread.
    CONNECT_TIMEOUT = 0.5

    def __init__(self, addr: tuple[str, int], secret: bytes | None) -> None:
        host, port = addr
        super().__init__(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
        self.addr = addr
        self.secret = secret
        self.frames = auth.RawFrames(MAX_INBOUND_FRAME)
        self.shake: auth.ClientHandshake | None = None
        self.sealer: auth.Sealer | None = None
        self.opener: auth.Opener | None = None

    def open(self, hello: dict[str, Any]) -> None:
        hello = dict(hello, started=process_started())
        try:
            sock = socket.create_connection(self.addr, timeout=self.CONNECT_TIMEOUT)
        except OSError as err:
            raise AgentUnavailable(self.path, err.strerror or str(err)) from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        except OSError as err:
            sock.close()
            raise AgentUnavailable(self.path, err.strerror or str(err)) from None
        self.sock = sock
        self.state = "handshake"
        if self.secret is not None:
            self.shake = auth.ClientHandshake(self.secret)
            self.pending = self.shake.hello_frame(hello)
        else:
            self.pending = protocol.encode(hello)
        self.flush(0.0)

    def poll(self) -> None:
        while True:
            data = self._recv()
            if data is None:
                return
            try:
                for body in self.frames.feed(data):
                    if self.opener is not None:
                        msg = self.opener.open_msg(body)
                    else:
                        msg = protocol.decode_body(body)
                    if msg.get("t") == "challenge" and self.shake is not None:
                        proof = self.shake.answer(msg)
                        self.sealer, self.opener, self.shake = self.shake.sealer, self.shake.opener, None
                        self.pending += proof
                        self.flush(0.0)
                    else:
                        self._handle(msg)
            except auth.AuthError as err:
                raise AgentRefused(self.path, f"authentication: {err}") from None
            except ProtocolError as err:
                if self.state == "handshake" and str(err).startswith("refused"):
                    raise AgentRefused(self.path, str(err)) from None
                raise AgentUnavailable(self.path, f"bad frame from the agent: {err}") from None

    def send(self, frame: bytes, now: float) -> bool:
        if not self.flush(now):
            return False
        self.pending = self.sealer.seal_frame(frame) if self.sealer is not None else frame
        self.flush(now)
        return True


_started: tuple[int, float] | None = None


def process_started() -> float:
    """When connmon first ran in this pid (epoch seconds): with the pid and
    host, the identity a TCP reporter claims."""
    global _started
    pid = os.getpid()
    if _started is None or _started[0] != pid:
        _started = (pid, round(time.time(), 3))
    return _started[1]
