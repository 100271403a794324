"""Which agent ``status`` and ``console`` talk to: the local Unix socket, or
a (remote) agent over TCP, authenticated with the shared secret.

Options (both commands): ``--addr HOST:PORT``, or ``--node NAME`` (its
``hostname=`` in the configuration file: ``--config``, else
``$CONNMON_CONFIG``, else ``/etc/connmon.cfg``; ``--service`` when several
services name it), with the secret from ``--secret-file``, else
``$CONNMON_SECRET_FILE``, else the ``secret_file`` of the node's service
(for ``--addr``: of the service whose nodes list that address). No secret:
plain TCP, which only an agent without a secret accepts.

No sockets here: :class:`Endpoint` is plain data that
:mod:`connmon_agent.query` connects to.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from . import auth
from .config import ENV_CONFIG, ClusterConfig, format_addr, load_config, parse_addr
from .errors import ConfigError


@dataclass(frozen=True)
class Endpoint:
    """An agent to connect to: ``socket_path`` (Unix) or ``addr`` (TCP,
    with ``secret`` when authenticated). ``str()`` names it for messages;
    the secret is never shown."""

    socket_path: str | None = None
    addr: tuple[str, int] | None = None
    secret: bytes | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        if self.addr is not None:
            return format_addr(self.addr)
        return self.socket_path or "?"

    def __str__(self) -> str:
        return self.label


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The remote-agent options of ``status`` and ``console``."""
    g = parser.add_argument_group("remote agent (TCP; see the README's cluster section)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--addr", metavar="HOST:PORT", help="talk to the agent listening at this TCP address")
    where.add_argument("--node", metavar="NAME", help="talk to this node of the configuration file over TCP")
    g.add_argument("--service", metavar="NAME", help="the service of --node, when several name it")
    g.add_argument("--config", metavar="FILE",
                   help="configuration file for --node and the secret (default: $CONNMON_CONFIG, else /etc/connmon.cfg)")
    g.add_argument("--secret-file", metavar="FILE",
                   help="the shared secret (default: $CONNMON_SECRET_FILE, else the service's secret_file)")


def from_args(args: argparse.Namespace) -> str | Endpoint:
    """The socket path, or the TCP endpoint the options name; ConfigError
    for conflicting options, a bad address, an unknown node or a bad secret."""
    addr_text = getattr(args, "addr", None)
    node = getattr(args, "node", None)
    if addr_text is None and node is None:
        for opt in ("service", "config", "secret_file"):
            if getattr(args, opt, None):
                raise ConfigError(f"--{opt.replace('_', '-')} needs --addr HOST:PORT or --node NAME")
        return args.socket
    if getattr(args, "socket_given", False):
        raise ConfigError("give either --socket (a local agent) or --addr/--node (over TCP), not both")
    secret_file = args.secret_file or os.environ.get(auth.ENV_SECRET_FILE) or None
    if node is not None:
        svc, entry = load_config(args.config).find_node(node, args.service)
        addr = entry.address
        secret_file = secret_file or svc.secret_file
    else:
        if args.service:
            raise ConfigError("--service goes with --node, not --addr")
        try:
            addr = parse_addr(addr_text)
        except ValueError as err:
            raise ConfigError(f"--addr: {err}") from None
        if secret_file is None:
            secret_file = _secret_of_addr(addr, args.config)
    secret = auth.load_secret(secret_file) if secret_file else None
    return Endpoint(addr=addr, secret=secret)


def _secret_of_addr(addr: tuple[str, int], config_file: str | None) -> str | None:
    """The secret_file of the service listing ``addr`` in the configuration
    (a broken /etc/connmon.cfg is ignored; a file named by --config or
    $CONNMON_CONFIG is not)."""
    config: ClusterConfig
    try:
        config = load_config(config_file)
    except ConfigError:
        if config_file or os.environ.get(ENV_CONFIG):
            raise
        return None
    for svc in config.services.values():
        if any(n.address == addr for n in svc.nodes):
            return svc.secret_file
    return None
