"""The cluster configuration file, in the original connmon's INI format::

    [connmon_service_default]
    name: default
    secret_file: /etc/connmon.secret
    nodes:
        node1 hostname=192.168.1.205:5800
        node2 hostname=192.168.1.206:5800 bind=0.0.0.0

Read from ``--config FILE``, else ``$CONNMON_CONFIG``, else
``/etc/connmon.cfg`` when it exists; with none of them, one local node
``node1 hostname=localhost:5800``. Every problem is a
:class:`~connmon_agent.errors.ConfigError` naming the file, the line and
the problem. Parsed by hand (not configparser) so that every error, down to
one option of one node line, can name its line.

Constraints: standard library only and no sockets (the client imports it
inside users' applications, once, while an engine is created).
"""
from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

ENV_CONFIG = "CONNMON_CONFIG"
DEFAULT_PATH = "/etc/connmon.cfg"
DEFAULT_PORT = 5800
SECTION_PREFIX = "connmon_service_"

#: Service keys with a number value: (default, minimum, maximum).
NUMBER_KEYS: dict[str, tuple[float, float, float]] = {
    # how often a node sends its changes (a delta, or a heartbeat) to peers
    "sync_interval": (1.0, 0.05, 60.0),
    # how often a node sends its whole state to peers even without reconnects
    "full_sync_interval": (30.0, 0.1, 3600.0),
    # a peer whose link stays up but says nothing this long is shown stale
    "peer_stale_after": (5.0, 0.1, 3600.0),
    # a peer stale or gone this long has its hosts dropped from the view
    "peer_drop_after": (60.0, 0.1, 86400.0),
    # the longest frame accepted from a peer (bytes)
    "max_peer_frame": (64 << 20, 1 << 16, 1 << 30),
    # the most processes accepted from one peer
    "max_peer_processes": (100_000, 1, 10_000_000),
}
TEXT_KEYS = ("name", "secret_file", "socket")
KNOWN_KEYS = TEXT_KEYS + tuple(NUMBER_KEYS) + ("nodes",)
NODE_OPTIONS = ("hostname", "bind", "socket", "host")

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class Node:
    """One agent of a service: where peers and reporters reach it, where it
    listens, and (optionally) its Unix socket and the host name it shows."""

    name: str
    address: tuple[str, int]
    bind: tuple[str, int]
    socket: str | None = None
    host: str | None = None
    line: int = 0

    @property
    def hostname(self) -> str:
        return format_addr(self.address)


@dataclass(frozen=True)
class Service:
    """One ``[connmon_service_NAME]`` section."""

    name: str
    nodes: tuple[Node, ...]
    secret_file: str | None = None
    socket: str | None = None
    numbers: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def number(self, key: str) -> float:
        return self.numbers.get(key, NUMBER_KEYS[key][0])

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        known = ", ".join(n.name for n in self.nodes)
        raise ConfigError(f"{self.source}: service {self.name!r} has no node {name!r} (nodes: {known})")


@dataclass(frozen=True)
class ClusterConfig:
    """Every service of one configuration file (or the default)."""

    services: dict[str, Service]
    path: str | None = None

    @property
    def source(self) -> str:
        return self.path or "the default configuration"

    def service(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services))
            raise ConfigError(f"{self.source}: no service {name!r} (services: {known})") from None

    def find_node(self, node: str, service: str | None = None) -> tuple[Service, Node]:
        """The service and entry of ``node``; ConfigError when it is unknown
        or (without ``service``) named in more than one service."""
        if service is not None:
            svc = self.service(service)
            return svc, svc.node(node)
        found = [(s, n) for s in self.services.values() for n in s.nodes if n.name == node]
        if not found:
            known = ", ".join(n.name for s in self.services.values() for n in s.nodes)
            raise ConfigError(f"{self.source}: no node {node!r} (nodes: {known})")
        if len(found) > 1:
            names = ", ".join(s.name for s, _ in found)
            raise ConfigError(f"{self.source}: node {node!r} is in several services ({names}); give --service")
        return found[0]


def default_config() -> ClusterConfig:
    """One local node, as the original connmon without a file (but bound to
    loopback: binding anything else needs a shared secret)."""
    node = Node("node1", ("localhost", DEFAULT_PORT), ("localhost", DEFAULT_PORT))
    return ClusterConfig({"default": Service("default", (node,), source="the default configuration")})


def config_path(explicit: str | None = None) -> str | None:
    """The file to read: ``explicit``, else ``$CONNMON_CONFIG``, else
    ``/etc/connmon.cfg`` when it exists, else None (the default config)."""
    if explicit:
        return explicit
    env = os.environ.get(ENV_CONFIG)
    if env:
        return env
    return DEFAULT_PATH if os.path.exists(DEFAULT_PATH) else None


def load_config(path: str | None = None) -> ClusterConfig:
    """The configuration at :func:`config_path` (``path``); ConfigError
    naming the file, line and problem when it is bad or unreadable."""
    path = config_path(path)
    if path is None:
        return default_config()
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"config file {path}: cannot read it: {reason}") from None
    return parse_config(text, path)


# -- parsing ------------------------------------------------------------------


class _Section:
    def __init__(self, title: str, line: int) -> None:
        self.title = title
        self.line = line
        #: key -> (value lines [(line number, text)], line of the key)
        self.keys: dict[str, tuple[list[tuple[int, str]], int]] = {}


def parse_config(text: str, path: str = "<config>") -> ClusterConfig:
    """Parse the text of a configuration file named ``path``."""

    def fail(line: int, problem: str) -> ConfigError:
        return ConfigError(f"{path}, line {line}: {problem}")

    sections: list[_Section] = []
    current: _Section | None = None
    last_key: str | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[0] in " \t":
            # A continuation line belongs to the key above it (nodes: ...).
            if current is None or last_key is None:
                raise fail(number, f"indented line {stripped!r} continues no key")
            current.keys[last_key][0].append((number, stripped))
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]"):
                raise fail(number, f"unterminated section header {stripped!r}")
            title = stripped[1:-1].strip()
            if not title.startswith(SECTION_PREFIX) or not title[len(SECTION_PREFIX):]:
                raise fail(number, f"unknown section [{title}] (expected [{SECTION_PREFIX}NAME])")
            if any(s.title == title for s in sections):
                raise fail(number, f"section [{title}] appears twice")
            current = _Section(title, number)
            sections.append(current)
            last_key = None
            continue
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*[:=]\s*(.*)$", stripped)
        if match is None:
            raise fail(number, f"expected 'key: value', got {stripped!r}")
        if current is None:
            raise fail(number, f"key {match.group(1)!r} outside of a [{SECTION_PREFIX}NAME] section")
        key, value = match.group(1).lower(), match.group(2).strip()
        if key not in KNOWN_KEYS:
            raise fail(number, f"unknown key {key!r} in [{current.title}] (known: {', '.join(KNOWN_KEYS)})")
        if key in current.keys:
            raise fail(number, f"key {key!r} given twice in [{current.title}]")
        current.keys[key] = ([(number, value)] if value else [], number)
        last_key = key
    if not sections:
        raise ConfigError(f"{path}: defines no [{SECTION_PREFIX}NAME] section")
    services: dict[str, Service] = {}
    for section in sections:
        svc = _service(section, path, fail)
        if svc.name in services:
            raise fail(section.line, f"service {svc.name!r} is defined twice")
        services[svc.name] = svc
    return ClusterConfig(services, path)


def _service(section: _Section, path: str, fail: Any) -> Service:
    def text(key: str) -> str | None:
        entry = section.keys.get(key)
        if entry is None:
            return None
        lines, line = entry
        if len(lines) != 1:
            raise fail(line, f"key {key!r} needs one value on its own line")
        return lines[0][1]

    name = text("name") or section.title[len(SECTION_PREFIX):]
    if not _NAME.match(name):
        raise fail(section.keys["name"][1] if "name" in section.keys else section.line,
                   f"service name {name!r} must be letters, digits, '_', '.', '-'")
    numbers: dict[str, float] = {}
    for key, (default, low, high) in NUMBER_KEYS.items():
        value = text(key)
        if value is None:
            continue
        line = section.keys[key][1]
        try:
            num = float(value)
        except ValueError:
            raise fail(line, f"{key} must be a number, not {value!r}") from None
        if not math.isfinite(num) or not low <= num <= high:
            raise fail(line, f"{key} must be between {low:g} and {high:g}, not {value!r}")
        numbers[key] = num
    entry = section.keys.get("nodes")
    if entry is None or not entry[0]:
        raise fail(entry[1] if entry else section.line, f"[{section.title}] lists no nodes (nodes: NAME hostname=HOST:PORT)")
    nodes: list[Node] = []
    for line, spec in entry[0]:
        node = _node(line, spec, fail)
        for other in nodes:
            if other.name == node.name:
                raise fail(line, f"node {node.name!r} is listed twice (first on line {other.line})")
            if other.address == node.address:
                raise fail(line, f"nodes {other.name!r} and {node.name!r} have the same hostname {node.hostname}")
            if node.socket and other.socket == node.socket:
                raise fail(line, f"nodes {other.name!r} and {node.name!r} have the same socket {node.socket}")
        nodes.append(node)
    secret = text("secret_file")
    if secret is not None and not os.path.isabs(secret):
        secret = os.path.join(os.path.dirname(os.path.abspath(path)), secret)
    return Service(name, tuple(nodes), secret, text("socket"), numbers, path)


def _node(line: int, spec: str, fail: Any) -> Node:
    parts = spec.split()
    name = parts[0]
    if "=" in name or not _NAME.match(name):
        raise fail(line, f"a node line starts with the node's name, not {name!r} (NAME hostname=HOST:PORT)")
    opts: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise fail(line, f"node {name!r}: expected key=value, got {part!r}")
        if key not in NODE_OPTIONS:
            raise fail(line, f"node {name!r}: unknown option {key!r} (known: {', '.join(NODE_OPTIONS)})")
        if key in opts:
            raise fail(line, f"node {name!r}: option {key!r} given twice")
        opts[key] = value
    if "hostname" not in opts:
        raise fail(line, f"node {name!r} has no hostname=HOST:PORT")
    try:
        address = parse_addr(opts["hostname"])
    except ValueError as err:
        raise fail(line, f"node {name!r}: hostname {err}") from None
    bind = address
    if "bind" in opts:
        value = opts["bind"]
        try:
            # bind=ADDR (the port of hostname=) or bind=ADDR:PORT
            bind = parse_addr(value) if _has_port(value) else (_host(value), address[1])
        except ValueError as err:
            raise fail(line, f"node {name!r}: bind {err}") from None
    socket_path = opts.get("socket")
    if socket_path is not None and (not os.path.isabs(socket_path) or len(os.fsencode(socket_path)) > 107):
        raise fail(line, f"node {name!r}: socket must be an absolute path of at most 107 bytes")
    return Node(name, address, bind, socket_path, opts.get("host"), line)


def _has_port(value: str) -> bool:
    if value.startswith("["):
        return "]:" in value
    return value.count(":") == 1


def _host(value: str) -> str:
    host = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if not host or any(c.isspace() or c in "/[]" for c in host):
        raise ValueError(f"{value!r} is not a host")
    return host


def parse_addr(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; ValueError saying
    what is wrong."""
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{value!r} is not HOST:PORT")
    host = _host(host)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r} has a bad port (1-65535)")
    return host, int(port)


def format_addr(addr: tuple[str, int]) -> str:
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP addresses; any other name or
    address (``0.0.0.0`` included) is not."""
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
