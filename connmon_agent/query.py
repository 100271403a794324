"""A small synchronous client of the agent, for ``status``, tests and the
console: :func:`fetch_state` (one snapshot) and :func:`subscribe` (a
snapshot every interval, as the agent pushes them).

Blocking sockets with timeouts; no event loop, no threads. Anything that
keeps an answer from coming raises :class:`AgentUnavailable`; an agent that
answers but refuses raises :class:`ProtocolError` with its reason.
"""
from __future__ import annotations

import socket
from typing import Any, Iterator

from . import protocol
from .errors import AgentUnavailable, ProtocolError
from .paths import default_socket_path


class AgentLink:
    """One console connection to an agent: hello done, ready to query."""

    def __init__(self, socket_path: str | None = None, timeout: float = 5.0) -> None:
        self.path = socket_path or default_socket_path()
        self.timeout = timeout
        self.welcome: dict[str, Any] = {}
        self._sock: socket.socket | None = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.settimeout(timeout)
            self._sock.connect(self.path)
            self.send(protocol.hello("console"))
            reply = self.receive()
        except OSError as err:
            self.close()
            raise AgentUnavailable(self.path, _reason(err)) from None
        except BaseException:
            self.close()
            raise
        if reply["t"] == "error":
            self.close()
            raise ProtocolError(f"agent at {self.path} refused: {reply.get('message')}")
        if reply["t"] != "welcome":
            self.close()
            raise ProtocolError(f"agent at {self.path} answered {reply['t']!r} to hello")
        self.welcome = reply

    def send(self, msg: dict[str, Any]) -> None:
        if self._sock is None:
            raise AgentUnavailable(self.path, "connection closed")
        self._sock.sendall(protocol.encode(msg))

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; AgentUnavailable on timeout or a closed connection."""
        if self._sock is None:
            raise AgentUnavailable(self.path, "connection closed")
        if timeout is not None:
            self._sock.settimeout(timeout)
        (size,) = protocol.HEADER.unpack(self._read_exact(protocol.HEADER_SIZE))
        if size == 0 or size > protocol.MAX_STATE_FRAME:
            raise ProtocolError(f"agent at {self.path} sent a frame of {size} bytes")
        return protocol.decode_body(self._read_exact(size))

    def _read_exact(self, n: int) -> bytearray:
        # One buffer of the frame's size, filled in place: a 50 MB state at
        # 10,000 processes is read without a copy per chunk.
        assert self._sock is not None
        buf = bytearray(n)
        got = 0
        with memoryview(buf) as view:
            while got < n:
                try:
                    k = self._sock.recv_into(view[got:])
                except OSError as err:
                    raise AgentUnavailable(self.path, _reason(err)) from None
                if not k:
                    raise AgentUnavailable(self.path, "the agent closed the connection")
                got += k
        return buf

    def query(self) -> dict[str, Any]:
        """One snapshot of the agent's state (the status JSON)."""
        self.send({"t": "query"})
        return self._state(self.receive())

    def _state(self, msg: dict[str, Any]) -> dict[str, Any]:
        if msg["t"] == "error":
            raise ProtocolError(f"agent at {self.path}: {msg.get('message')}")
        if msg["t"] != "state":
            raise ProtocolError(f"expected state from {self.path}, got {msg['t']!r}")
        msg = dict(msg)
        del msg["t"]
        return msg

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> "AgentLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch_state(socket_path: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """The agent's current state as the status dict (docs/internals.rst)."""
    with AgentLink(socket_path, timeout) as link:
        return link.query()


class Subscription:
    """Iterate over the states an agent pushes every ``interval`` seconds.

    ``next()`` blocks up to ``max(timeout, 3 * interval)`` for the next one
    and raises AgentUnavailable when the agent goes away. Close it (or use
    ``with``) to end the subscription.
    """

    def __init__(self, socket_path: str | None = None, interval: float = 1.0, timeout: float = 5.0) -> None:
        self.interval = interval
        self._link = AgentLink(socket_path, timeout)
        self._wait = max(timeout, 3 * interval)
        try:
            self._link.send({"t": "subscribe", "interval": interval})
        except OSError as err:
            self._link.close()
            raise AgentUnavailable(self._link.path, _reason(err)) from None

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self

    def __next__(self) -> dict[str, Any]:
        return self._link._state(self._link.receive(self._wait))

    def close(self) -> None:
        self._link.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def subscribe(socket_path: str | None = None, interval: float = 1.0, timeout: float = 5.0) -> Subscription:
    """A :class:`Subscription`: ``for state in subscribe(path, 1.0): ...``."""
    return Subscription(socket_path, interval, timeout)


def _reason(err: OSError) -> str:
    if isinstance(err, socket.timeout):
        return "timed out"
    if isinstance(err, FileNotFoundError):
        return "no socket there"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused; a stale socket?"
    return err.strerror or str(err)
