"""A small synchronous client of the agent, for ``status``, tests and the
console: :func:`fetch_state` (one snapshot) and :func:`subscribe` (a
snapshot every interval, as the agent pushes them).

The agent is a Unix socket path, or an :class:`~connmon_agent.endpoint.Endpoint`
naming a TCP address (a remote agent), authenticated with the shared
secret through the handshake of :mod:`connmon_agent.auth` and sealed frames
after it.

Blocking sockets with timeouts; no event loop, no threads (but ``close()``
may be called from another thread to wake one blocked in a read). Anything
that keeps an answer from coming raises :class:`AgentUnavailable`; an agent
that answers but refuses raises :class:`ProtocolError` with its reason
(:class:`~connmon_agent.auth.AuthError` when authentication fails).
"""
from __future__ import annotations

import gc
import socket
from contextlib import contextmanager
from typing import Any, Iterator, Union

from . import auth, protocol
from .endpoint import Endpoint
from .errors import AgentUnavailable, ProtocolError
from .paths import default_socket_path

#: Where an agent is: a Unix socket path (None: the default) or an Endpoint.
Where = Union[str, Endpoint, None]


#: Frames of at least this many bytes (a state of a few hundred processes
#: and up) are decoded with the cyclic garbage collector paused.
BIG_FRAME = 1 << 20


@contextmanager
def gc_paused(pause: bool = True) -> Iterator[None]:
    """Pause the cyclic garbage collector (if ``pause``) for the block.

    Decoding a state makes millions of objects that all live on; the
    collector, triggered by their number, would walk them again and again:
    at 10,000 processes that doubles or triples the decoding (about 250
    instead of 85 to 135 ms, ``benchmarks/bench_console_render.py``), time
    during which the console's feed thread holds the GIL."""
    if not pause or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class AgentLink:
    """One console connection to an agent: hello done, ready to query."""

    def __init__(self, socket_path: Where = None, timeout: float = 5.0) -> None:
        if isinstance(socket_path, Endpoint) and socket_path.addr is None:
            socket_path = socket_path.socket_path
        self.endpoint = socket_path if isinstance(socket_path, Endpoint) else None
        self.path = self.endpoint.label if self.endpoint else (socket_path or default_socket_path())
        self.timeout = timeout
        self.welcome: dict[str, Any] = {}
        self._sealer: auth.Sealer | None = None
        self._opener: auth.Opener | None = None
        self._sock: socket.socket | None = None
        try:
            if self.endpoint is not None:
                reply = self._open_tcp(self.endpoint)
            else:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self._sock.settimeout(timeout)
                self._sock.connect(self.path)
                self.send(protocol.hello("console"))
                reply = self.receive()
        except OSError as err:
            self.close()
            raise AgentUnavailable(self.path, _reason(err, self.endpoint is not None)) from None
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

    def _open_tcp(self, endpoint: Endpoint) -> dict[str, Any]:
        """Connect and say hello over TCP (the handshake when there is a
        secret); the agent's answer to the hello."""
        assert endpoint.addr is not None
        self._sock = socket.create_connection(endpoint.addr, timeout=self.timeout)
        hello = protocol.hello("console")
        if endpoint.secret is None:
            self.send(hello)
            return self.receive()
        shake = auth.ClientHandshake(endpoint.secret)
        self._sock.sendall(shake.hello_frame(hello))
        challenge = self._read_frame()
        try:
            proof = shake.answer(protocol.decode_body(challenge))
        except auth.AuthError as err:
            raise auth.AuthError(err.kind, f"authentication with the agent at {self.path} failed: "
                                           f"it does not know this shared secret (wrong secret file?)") from None
        except ProtocolError as err:
            raise ProtocolError(f"agent at {self.path} {err}") from None
        self._sock.sendall(proof)
        self._sealer, self._opener = shake.sealer, shake.opener
        body = self._read_frame()
        try:
            return self._opener.open_msg(body)  # type: ignore[union-attr]
        except auth.AuthError:
            # Refused after the proof: the agent's error is not sealed.
            msg = protocol.decode_body(body)
            if msg.get("t") != "error":
                raise
            return msg

    def send(self, msg: dict[str, Any]) -> None:
        if self._sock is None:
            raise AgentUnavailable(self.path, "connection closed")
        self._sock.sendall(self._sealer.seal_msg(msg) if self._sealer is not None else protocol.encode(msg))

    def receive(self, timeout: float | None = None) -> dict[str, Any]:
        """The next message; AgentUnavailable on timeout or a closed connection."""
        if self._sock is None:
            raise AgentUnavailable(self.path, "connection closed")
        if timeout is not None:
            self._sock.settimeout(timeout)
        body = self._read_frame()
        with gc_paused(len(body) >= BIG_FRAME):
            if self._opener is not None:
                return self._opener.open_msg(body)
            return protocol.decode_body(body)

    def _read_frame(self) -> bytearray:
        """The body of the next frame (sealed or not)."""
        limit = protocol.MAX_STATE_FRAME + (auth.SEALED_OVERHEAD if self._opener is not None else 0)
        (size,) = protocol.HEADER.unpack(self._read_exact(protocol.HEADER_SIZE))
        if size == 0 or size > limit:
            raise ProtocolError(f"agent at {self.path} sent a frame of {size} bytes")
        return self._read_exact(size)

    def _read_exact(self, n: int) -> bytearray:
        # One buffer of the frame's size, filled in place: a 50 MB state at
        # 10,000 processes is read without a copy per chunk.
        sock = self._sock   # close() from another thread sets it to None
        if sock is None:
            raise AgentUnavailable(self.path, "connection closed")
        buf = bytearray(n)
        got = 0
        with memoryview(buf) as view:
            while got < n:
                try:
                    k = sock.recv_into(view[got:])
                except OSError as err:
                    raise AgentUnavailable(self.path, _reason(err, self.endpoint is not None)) from None
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
        """Close the connection; safe from another thread: the shutdown
        wakes a thread blocked reading (it gets AgentUnavailable)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass   # not connected (yet), or already shut down
            sock.close()

    def __enter__(self) -> "AgentLink":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch_state(socket_path: Where = None, timeout: float = 5.0) -> dict[str, Any]:
    """The agent's current state as the status dict (docs/internals.rst);
    ``socket_path`` is a Unix socket path or an Endpoint."""
    with AgentLink(socket_path, timeout) as link:
        return link.query()


class Subscription:
    """Iterate over the states an agent pushes every ``interval`` seconds.

    ``next()`` blocks up to ``max(timeout, 3 * interval)`` for the next one
    and raises AgentUnavailable when the agent goes away. Close it (or use
    ``with``) to end the subscription.
    """

    def __init__(self, socket_path: Where = None, interval: float = 1.0, timeout: float = 5.0) -> None:
        self.interval = interval
        self._link = AgentLink(socket_path, timeout)
        self._wait = max(timeout, 3 * interval)
        try:
            self._link.send({"t": "subscribe", "interval": interval})
        except OSError as err:
            self._link.close()
            raise AgentUnavailable(self._link.path, _reason(err, self._link.endpoint is not None)) from None

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


def subscribe(socket_path: Where = None, interval: float = 1.0, timeout: float = 5.0) -> Subscription:
    """A :class:`Subscription`: ``for state in subscribe(path, 1.0): ...``."""
    return Subscription(socket_path, interval, timeout)


def _reason(err: OSError, tcp: bool = False) -> str:
    if isinstance(err, socket.timeout):
        return "timed out"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve the host name: {err.strerror or err}"
    if isinstance(err, FileNotFoundError):
        return "no socket there"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused: nothing listens there" if tcp else "connection refused; a stale socket?"
    return err.strerror or str(err)
