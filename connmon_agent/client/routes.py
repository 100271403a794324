"""Where a pool's reports go: the local agent's Unix socket, an agent at
``connmon_addr=HOST:PORT``, or a node of ``connmon_service=NAME``.

* no service, no addr: the Unix socket (``connmon_socket`` or the default).
* ``connmon_addr``: TCP to that agent (containers without a local agent).
* ``connmon_service``: the local agent when one answers on the Unix
  socket, otherwise the service's nodes from the configuration file
  (``CONNMON_CONFIG``, else ``/etc/connmon.cfg``, else one node on
  ``localhost:5800``) in random order, trying each in turn.

TCP reports are authenticated with the shared secret from, in order: the
``connmon_secret_file`` URL parameter, ``$CONNMON_SECRET_FILE``, or the
service's ``secret_file`` (for ``connmon_addr``: the service of the
configuration that lists that address). No secret: plain TCP, which only
an agent bound to loopback accepts.

:func:`resolve` runs once, while an engine is created (ConfigError for a
bad file or secret); :func:`connect` runs in the reporter thread only.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

from .. import auth
from ..config import format_addr, load_config
from ..errors import AgentUnavailable
from .transport import AgentLink, TcpAgentLink


@dataclass(frozen=True)
class Route:
    """The places one channel of reports may go, tried in order."""

    key: str
    socket_path: str | None = None
    addrs: tuple[tuple[str, int], ...] = ()
    secret: bytes | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        places = ([self.socket_path] if self.socket_path else []) + [format_addr(a) for a in self.addrs]
        return " or ".join(places)


def resolve(socket_path: str, service: str | None, addr: tuple[str, int] | None,
            secret_file: str | None) -> Route:
    """The route of a pool's reports (see the module docstring)."""
    if addr is None and service is None:
        return Route(socket_path, socket_path)
    secret_file = secret_file or os.environ.get(auth.ENV_SECRET_FILE) or None
    if addr is not None:
        if secret_file is None:
            secret_file = _secret_of_addr(addr)
        secret = auth.load_secret(secret_file) if secret_file else None
        return Route(f"tcp:{format_addr(addr)}", None, (addr,), secret)
    assert service is not None
    svc = load_config().service(service)
    secret_file = secret_file or svc.secret_file
    secret = auth.load_secret(secret_file) if secret_file else None
    addrs = tuple(n.address for n in svc.nodes)
    return Route(f"service:{service}:{socket_path}", socket_path, addrs, secret)


def _secret_of_addr(addr: tuple[str, int]) -> str | None:
    from ..errors import ConfigError

    try:
        config = load_config()
    except ConfigError:
        return None  # no usable file: the URL names the agent by itself
    for svc in config.services.values():
        if any(n.address == addr for n in svc.nodes):
            return svc.secret_file
    return None


def connect(route: Route, hello: dict[str, Any]) -> AgentLink:
    """An opened link along ``route``: the Unix socket first, then the TCP
    addresses from a random one on. Reporter thread only; AgentUnavailable
    naming every place tried when none answers."""
    errors = []
    if route.socket_path is not None:
        link = AgentLink(route.socket_path)
        try:
            link.open(hello)
            return link
        except AgentUnavailable as err:
            link.close()
            errors.append(err.reason or str(err))
    addrs = list(route.addrs)
    if addrs:
        start = random.randrange(len(addrs))
        addrs = addrs[start:] + addrs[:start]
    for addr in addrs:
        tcp = TcpAgentLink(addr, route.secret)
        try:
            tcp.open(hello)
            return tcp
        except AgentUnavailable as err:
            tcp.close()
            errors.append(f"{tcp.path}: {err.reason or err}")
    raise AgentUnavailable(route.label, "; ".join(errors))
