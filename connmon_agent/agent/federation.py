"""A cluster node: the TCP listener, a link to every other node of the
service, and the sync machinery between them.

As in the original connmon, all nodes contact each other (a full mesh):
each node pushes its *own* processes (:mod:`.outbox`) over its outgoing
link to every peer (:mod:`.peers`) and receives theirs on the links they
opened (:mod:`.tcp`, :mod:`.remote`). Nothing received is ever forwarded,
so there are no loops and no duplicates. A link that (re)connects gets a
full sync at once; then a delta (or heartbeat) every ``sync_interval`` and
a full sync every ``full_sync_interval``. A peer whose link drops is shown
stale at once, one silent for ``peer_stale_after`` too, and its hosts are
dropped after ``peer_drop_after``.

Binding anything but loopback without a shared secret is refused
(:meth:`ClusterOptions.from_config`). Event loop only.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import auth
from ..config import ClusterConfig, Node, format_addr, is_loopback
from ..errors import ConfigError
from .outbox import Outbox
from .peers import PeerLink
from .remote import RemoteStore
from .tcp import TcpConnection

if TYPE_CHECKING:
    from .server import AgentServer

log = logging.getLogger("connmon.agent")


@dataclass(frozen=True)
class ClusterOptions:
    """This node's place in its service, from the configuration file."""

    service: str
    node: Node
    peers: tuple[Node, ...]
    secret: bytes | None = None
    sync_interval: float = 1.0
    full_sync_interval: float = 30.0
    peer_stale_after: float = 5.0
    peer_drop_after: float = 60.0
    max_peer_frame: int = 64 << 20
    max_peer_processes: int = 100_000

    def __repr__(self) -> str:  # never show the secret
        return f"ClusterOptions(service={self.service!r}, node={self.node.name!r}, peers={[p.name for p in self.peers]})"

    @classmethod
    def from_config(cls, config: ClusterConfig, node: str, service: str | None = None) -> "ClusterOptions":
        """The options of ``node``; ConfigError for an unknown node, an
        unreadable secret, or a non-loopback bind without a secret."""
        svc, me = config.find_node(node, service)
        secret = auth.load_secret(svc.secret_file) if svc.secret_file else None
        bind_host = me.bind[0]
        if secret is None and not is_loopback(bind_host):
            raise ConfigError(
                f"{config.source}: node {me.name!r} would listen on {format_addr(me.bind)}, which is not loopback, "
                f"without peer authentication; set 'secret_file:' in [connmon_service_{svc.name}] "
                f"(a file of at least 16 random bytes, mode 0600) or bind to 127.0.0.1"
            )
        return cls(
            service=svc.name, node=me, peers=tuple(n for n in svc.nodes if n.name != me.name), secret=secret,
            sync_interval=svc.number("sync_interval"), full_sync_interval=svc.number("full_sync_interval"),
            peer_stale_after=svc.number("peer_stale_after"), peer_drop_after=svc.number("peer_drop_after"),
            max_peer_frame=int(svc.number("max_peer_frame")), max_peer_processes=int(svc.number("max_peer_processes")),
        )


class Federation:
    """The cluster side of one agent (event loop only)."""

    def __init__(self, server: "AgentServer", options: ClusterOptions) -> None:
        self.server = server
        self.options = options
        self.node = options.node
        self.secret = options.secret
        self.nonces = auth.NonceCache()
        self.remote = RemoteStore(options.max_peer_processes)
        registry = server.registry
        registry.remote = self.remote
        registry.local_hosts = (server.options.host,)
        self.outbox = Outbox(registry, self.node.name, server.options.host)
        self.links = {n.name: PeerLink(self, n) for n in options.peers}
        self.inbound: dict[str, TcpConnection] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.syncs_sent = 0
        self.full_syncs_sent = 0
        self._listener: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._last_full = time.monotonic()
        self._offenders: dict[str, float] = {}

    async def start(self) -> None:
        host, port = self.node.bind
        loop = self.server.loop
        try:
            self._listener = await loop.create_server(lambda: TcpConnection(self), host, port, reuse_address=True)
        except OSError as err:
            raise ConfigError(f"node {self.node.name}: cannot listen on {format_addr(self.node.bind)}: "
                              f"{err.strerror or err}") from None
        log.info("node %s of service %s listening on %s (%s); peers: %s", self.node.name, self.options.service,
                 format_addr(self.node.bind), "authenticated" if self.secret else "loopback, no secret",
                 ", ".join(f"{p.name}={p.hostname}" for p in self.options.peers) or "none")
        for link in self.links.values():
            link.start()
        self._ticker = loop.create_task(self._tick_forever())

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        for link in self.links.values():
            await link.close()
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()

    # -- outgoing -------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.options.sync_interval)
            try:
                self.tick(time.monotonic())
            except Exception:  # the cluster must outlive one bad tick
                log.exception("cluster sync tick failed")

    def tick(self, now: float) -> None:
        """One version to every linked peer; then the silence sweep."""
        delta = self.outbox.advance(now)
        full_due = now - self._last_full >= self.options.full_sync_interval
        if full_due:
            self._last_full = now
        for link in self.links.values():
            if not link.connected:
                continue
            if full_due or not link.synced:
                self.send_full(link, now)
            else:
                link.send(delta)
        self.remote.sweep(now, self.options.peer_stale_after, self.options.peer_drop_after)

    def link_up(self, link: PeerLink) -> None:
        self.send_full(link)

    def send_full(self, link: PeerLink, now: float | None = None) -> None:
        link.synced = True
        self.full_syncs_sent += 1
        link.send(self.outbox.full(time.monotonic() if now is None else now))

    # -- incoming -------------------------------------------------------------

    def accept_peer(self, conn: TcpConnection, hello: dict[str, Any]) -> str | None:
        """The node name of an authenticated peer hello, or None (refused)."""
        node = hello.get("node")
        service = hello.get("service")
        if service is not None and service != self.options.service:
            self.server.reject(conn, "identity", f"this node serves service {self.options.service!r}, not {service!r}")
            return None
        if node not in self.links:
            self.server.reject(conn, "identity", f"{node!r} is not a peer node of service {self.options.service!r}")
            return None
        old = self.inbound.get(node)
        self.inbound[node] = conn
        if old is not None and old is not conn:
            old.node = None  # replaced: its close must not mark the peer stale
            old.close()
        log.info("peer %s connected from %s", node, conn.address)
        return node

    def peer_lost(self, conn: TcpConnection) -> None:
        node = conn.node
        if node is not None and self.inbound.get(node) is conn:
            del self.inbound[node]
        if node is not None:
            self.remote.link_lost(node, conn, time.monotonic())

    def auth_failure(self, conn: TcpConnection, err: auth.AuthError) -> None:
        """Count, log (once a minute per address and kind) and close."""
        stats = self.server.stats
        setattr(stats, err.kind, getattr(stats, err.kind) + 1)
        self.server.registry.touch()
        key = f"{conn.address.rpartition(':')[0]} {err.kind}"
        now = time.monotonic()
        last = self._offenders.get(key)
        if last is None or now - last >= 60.0:
            if len(self._offenders) > 4096:
                self._offenders.clear()
            self._offenders[key] = now
            log.warning("%s: %s frame dropped, connection closed: %s", conn.describe(), err.kind, err)
        conn.send({"t": "error", "code": "auth", "message": str(err)})
        conn.close()

    # -- status ---------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        out = {
            "peers_linked": sum(1 for link in self.links.values() if link.connected),
            "peer_bytes_out": self.bytes_out,
            "peer_bytes_in": self.bytes_in,
            "syncs_sent": self.syncs_sent,
            "full_syncs_sent": self.full_syncs_sent,
        }
        out.update(self.remote.stats)
        return out

    def info(self) -> dict[str, Any]:
        """The ``agent.cluster`` object of the status JSON."""
        now = time.monotonic()
        peers = []
        for name, link in sorted(self.links.items()):
            origin = self.remote.origins.get(name)
            peers.append({
                "node": name,
                "address": link.node.hostname,
                "linked": link.connected,
                "inbound": name in self.inbound,
                "error": link.error,
                "host": origin.host if origin else None,
                "last_heard_age": round(now - origin.heard, 3) if origin else None,
                "stale": origin.stale if origin else True,
                "processes": len(origin.processes) if origin else 0,
            })
        return {
            "service": self.options.service,
            "node": self.node.name,
            "address": self.node.hostname,
            "authenticated": self.secret is not None,
            "sync_interval": self.options.sync_interval,
            "peers": peers,
        }
