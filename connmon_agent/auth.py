"""Authentication of TCP links (peers, TCP reporters, remote consoles) with
a shared secret: HMAC-SHA-256, fresh keys per connection, replay checks.

Handshake (the connecting side is C, the listening side S; frames are the
usual length-prefixed JSON until the session key is set)::

    C -> S  hello     {..., "auth": "hmac-sha256", "nonce": Nc}
    S -> C  challenge {"nonce": Ns, "mac": HMAC(K, "S" Nc Ns)}
    C -> S  proof     {"mac": HMAC(K, "C" Nc Ns sha256(hello bytes))}

``K`` is the shared secret, ``Nc``/``Ns`` 16 random bytes each. The
challenge proves S knows K (a peer never pushes its state to an impostor),
the proof proves C knows K and binds the exact hello it sent. Both sides
then derive the session key ``Ks = HMAC(K, "session" Nc Ns)`` and every
later frame in either direction is *sealed*::

    length (4 bytes) | MAC (32) | seq (8, big-endian) | JSON payload
    MAC = HMAC(Ks, direction ("C" or "S") | seq | payload)

``seq`` starts at 1 and must grow by exactly one per frame, so a frame
replayed, dropped or reordered inside a connection is refused; a whole
recorded connection replayed later fails because S picks a new ``Ns`` (and
S refuses a client nonce it has already seen). A MAC that does not match is
a forged (handshake) or tampered (sealed frame) message.

Sockets never appear here: these are byte-in, byte-out helpers used by the
agent's asyncio listener, its peer links and the client's reporter thread.
Standard library only (the client imports it inside users' applications).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import stat
from collections import OrderedDict
from typing import Any

from . import protocol
from .errors import ConfigError, ProtocolError

SCHEME = "hmac-sha256"
NONCE_BYTES = 16
MAC_BYTES = 32
SEQ_BYTES = 8
SEALED_OVERHEAD = MAC_BYTES + SEQ_BYTES
MIN_SECRET = 16
MAX_SECRET = 4096
ENV_SECRET_FILE = "CONNMON_SECRET_FILE"


class AuthError(ProtocolError):
    """A frame that failed authentication; ``kind`` is one of ``forged``,
    ``tampered``, ``replayed`` or ``oversized`` (the agent's counters)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def load_secret(path: str) -> bytes:
    """The shared secret in ``path`` (surrounding whitespace stripped).

    Refused (ConfigError naming the file) when it cannot be read, is
    readable or writable by group or other, is not owned by this user, or
    holds fewer than 16 bytes.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise ConfigError(f"secret file {path}: cannot read it: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"secret file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise ConfigError(
                f"secret file {path} is accessible to group/other (mode {stat.S_IMODE(st.st_mode):04o}); "
                f"run 'chmod 600 {path}'"
            )
        if st.st_uid != os.getuid():
            raise ConfigError(f"secret file {path} is owned by uid {st.st_uid}, not {os.getuid()}")
        data = os.read(fd, MAX_SECRET + 1)
    finally:
        os.close(fd)
    secret = data.strip()
    if len(data) > MAX_SECRET:
        raise ConfigError(f"secret file {path} is longer than {MAX_SECRET} bytes")
    if len(secret) < MIN_SECRET:
        raise ConfigError(f"secret file {path} holds {len(secret)} bytes; a secret needs at least {MIN_SECRET}")
    return secret


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.new(key, b"".join(parts), hashlib.sha256).digest()


def _unhex(msg: dict[str, Any], key: str, size: int, what: str) -> bytes:
    value = msg.get(key)
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise ProtocolError(f"{what}.{key} must be {size} bytes in hex")
    return raw


class Sealer:
    """Seals outgoing payloads of one direction of one connection."""

    __slots__ = ("key", "direction", "seq")

    def __init__(self, key: bytes, direction: bytes) -> None:
        self.key = key
        self.direction = direction
        self.seq = 0

    def seal(self, payload: bytes) -> bytes:
        """One sealed frame (header included) carrying ``payload``."""
        self.seq += 1
        seq = self.seq.to_bytes(SEQ_BYTES, "big")
        mac = hmac.new(self.key, self.direction + seq + payload, hashlib.sha256).digest()
        return protocol.HEADER.pack(SEALED_OVERHEAD + len(payload)) + mac + seq + payload

    def seal_frame(self, frame: bytes) -> bytes:
        """Seal an already encoded plain frame (its header is replaced)."""
        return self.seal(frame[protocol.HEADER_SIZE:])

    def seal_msg(self, msg: dict[str, Any]) -> bytes:
        return self.seal_frame(protocol.encode(msg))


class Opener:
    """Checks incoming sealed frame bodies of one direction of one connection."""

    __slots__ = ("key", "direction", "seq")

    def __init__(self, key: bytes, direction: bytes) -> None:
        self.key = key
        self.direction = direction
        self.seq = 0

    def open(self, body: bytes) -> bytes:
        """The payload of a sealed frame body; AuthError when it was
        tampered with or replayed (the connection must then be closed)."""
        if len(body) <= SEALED_OVERHEAD:
            raise AuthError("tampered", f"sealed frame of {len(body)} bytes is too short")
        mac = body[:MAC_BYTES]
        seq_bytes = body[MAC_BYTES:SEALED_OVERHEAD]
        payload = body[SEALED_OVERHEAD:]
        good = hmac.new(self.key, self.direction + seq_bytes + payload, hashlib.sha256).digest()
        if not hmac.compare_digest(mac, good):
            raise AuthError("tampered", "frame MAC does not match (tampered, or not from this session)")
        seq = int.from_bytes(seq_bytes, "big")
        if seq != self.seq + 1:
            kind = "replayed" if seq <= self.seq else "tampered"
            raise AuthError(kind, f"frame sequence {seq} where {self.seq + 1} was due")
        self.seq = seq
        return payload

    def open_msg(self, body: bytes) -> dict[str, Any]:
        return protocol.decode_body(self.open(body))


class RawFrames(protocol.FrameSplitter):
    """Splits a byte stream into frame bodies (``feed``), refusing any frame
    over ``max_size`` before reading it as AuthError ``oversized`` (counted
    with the other refused frames of authenticated links)."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[bytes]:
        return self.split(data)

    def oversized(self, size: int) -> None:
        raise AuthError("oversized", f"frame of {size} bytes exceeds the maximum of {self.max_size}")


class ClientHandshake:
    """The connecting side of the handshake."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.nonce = os.urandom(NONCE_BYTES)
        self._hello_digest = b""
        self.sealer: Sealer | None = None
        self.opener: Opener | None = None

    def hello_frame(self, hello: dict[str, Any]) -> bytes:
        """The plain hello frame, with this side's nonce added."""
        msg = dict(hello, auth=SCHEME, nonce=self.nonce.hex())
        frame = protocol.encode(msg)
        self._hello_digest = hashlib.sha256(frame[protocol.HEADER_SIZE:]).digest()
        return frame

    def answer(self, challenge: dict[str, Any]) -> bytes:
        """The proof frame answering ``challenge``; sets the session keys.
        AuthError ``forged`` when the other side does not know the secret."""
        if challenge.get("t") == "error":
            raise ProtocolError(f"refused: {challenge.get('message')}")
        if challenge.get("t") != "challenge":
            raise ProtocolError(f"expected challenge, got {challenge.get('t')!r}")
        server_nonce = _unhex(challenge, "nonce", NONCE_BYTES, "challenge")
        mac = _unhex(challenge, "mac", MAC_BYTES, "challenge")
        if not hmac.compare_digest(mac, _mac(self.secret, b"S", self.nonce, server_nonce)):
            raise AuthError("forged", "the other side does not know the shared secret")
        proof = _mac(self.secret, b"C", self.nonce, server_nonce, self._hello_digest)
        key = _mac(self.secret, b"session", self.nonce, server_nonce)
        self.sealer = Sealer(key, b"C")
        self.opener = Opener(key, b"S")
        return protocol.encode({"t": "proof", "mac": proof.hex()})


class NonceCache:
    """Client nonces seen recently (bounded), so a recorded handshake
    replayed to the same agent is recognised as a replay."""

    def __init__(self, size: int = 65536) -> None:
        self.size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def add(self, nonce: bytes) -> bool:
        """False when ``nonce`` was already seen."""
        if nonce in self._seen:
            return False
        self._seen[nonce] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True


class ServerHandshake:
    """The listening side of the handshake."""

    def __init__(self, secret: bytes, nonces: NonceCache) -> None:
        self.secret = secret
        self.nonces = nonces
        self.client_nonce = b""
        self.nonce = os.urandom(NONCE_BYTES)
        self._hello_digest = b""

    def challenge(self, hello_body: bytes, hello: dict[str, Any]) -> bytes:
        """The challenge frame for a hello; ProtocolError when the hello
        carries no authentication, AuthError ``replayed`` for a nonce seen
        before."""
        if hello.get("auth") != SCHEME:
            raise ProtocolError(f"this agent requires authentication ({SCHEME} with the shared secret)")
        self.client_nonce = _unhex(hello, "nonce", NONCE_BYTES, "hello")
        if not self.nonces.add(self.client_nonce):
            raise AuthError("replayed", "hello nonce seen before (a replayed connection)")
        self._hello_digest = hashlib.sha256(hello_body).digest()
        mac = _mac(self.secret, b"S", self.client_nonce, self.nonce)
        return protocol.encode({"t": "challenge", "nonce": self.nonce.hex(), "mac": mac.hex()})

    def verify(self, proof: dict[str, Any]) -> tuple[Sealer, Opener]:
        """Check the proof; the sealer and opener of the session.
        AuthError ``forged`` when the client does not know the secret."""
        if proof.get("t") != "proof":
            raise ProtocolError(f"expected proof, got {proof.get('t')!r}")
        mac = _unhex(proof, "mac", MAC_BYTES, "proof")
        good = _mac(self.secret, b"C", self.client_nonce, self.nonce, self._hello_digest)
        if not hmac.compare_digest(mac, good):
            raise AuthError("forged", "authentication failed (wrong shared secret, or a forged hello)")
        key = _mac(self.secret, b"session", self.client_nonce, self.nonce)
        return Sealer(key, b"S"), Opener(key, b"C")
