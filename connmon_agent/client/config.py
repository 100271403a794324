"""The client's settings: the ``connmon_*`` URL parameters and the
keyword arguments of :func:`connmon_agent.client.instrument`.

Every bad value is a :class:`~connmon_agent.errors.ConfigError` naming the
parameter, raised while the engine is being created, never later.
"""
from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Mapping

from .. import paths
from ..errors import ConfigError

#: Every URL parameter the plugin understands.
URL_PARAMS = (
    "connmon_program_name",
    "connmon_socket",
    "connmon_interval",
    "connmon_service",
    "connmon_addr",
    "connmon_where",
    "connmon_secret_file",
)
PREFIX = "connmon_"

DEFAULT_INTERVAL = 1.0
#: Reports more often than this would cost the agent more than they tell.
MIN_INTERVAL = 0.05
MAX_INTERVAL = 3600.0

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")
_ON = ("on", "true", "yes", "1")
_OFF = ("off", "false", "no", "0")


@dataclass(frozen=True)
class ClientConfig:
    """How one pool reports.

    ``service`` and ``addr`` choose where reports go (``route``, see
    :mod:`connmon_agent.client.routes`): the Unix socket, a node of a
    service, or an agent over TCP authenticated with ``secret_file``.
    ``where`` turns on capture of the first application frame of every
    checkout. It is off by default: walking the stack costs about 1-3 us
    per checkout (0.2-0.4x of a bare ``connect(); close()``, see
    benchmarks/bench_plugin_overhead.py), which alone would break the
    1.25x overhead budget.
    """

    program_name: str
    socket_path: str
    interval: float = DEFAULT_INTERVAL
    service: str | None = None
    addr: tuple[str, int] | None = None
    where: bool = False
    secret_file: str | None = None
    route: Any = field(default=None, repr=False)

    @property
    def channel_key(self) -> str:
        """Pools with the same key share one reporting connection."""
        return self.route.key if self.route is not None else self.socket_path


def default_program_name() -> str:
    """The basename of ``sys.argv[0]``, or ``python`` when there is none."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = os.path.basename(argv0)
    if not name or name in ("-c", "-m", "-"):
        return "python"
    return name


def make_config(
    *,
    program_name: Any = None,
    socket_path: Any = None,
    interval: Any = None,
    service: Any = None,
    addr: Any = None,
    where: Any = None,
    secret_file: Any = None,
) -> ClientConfig:
    """A validated config; ``None`` means the default for each setting.

    Values may be strings (from a URL) or already typed. With ``service``
    or ``addr`` the cluster configuration file and the secret file are
    read now (ConfigError naming a bad one).
    """
    from .routes import resolve

    sock = _socket(socket_path)
    svc = _service(service)
    address = _addr(addr)
    secret = _secret_file(secret_file)
    return ClientConfig(
        program_name=_program(program_name),
        socket_path=sock,
        interval=_interval(interval),
        service=svc,
        addr=address,
        where=_where(where),
        secret_file=secret,
        route=resolve(sock, svc, address, secret),
    )


def split_url_params(query: Mapping[str, Any]) -> dict[str, str]:
    """The ``connmon_*`` entries of a URL query, keyed without the prefix.

    Raises ConfigError naming the parameter for an unknown ``connmon_*``
    name, one given more than once, or one given empty.
    """
    found: dict[str, str] = {}
    for key, value in query.items():
        if not key.startswith(PREFIX):
            continue
        if key not in URL_PARAMS:
            raise ConfigError(
                f"unknown URL parameter {key!r} (connmon understands: {', '.join(URL_PARAMS)})"
            )
        if isinstance(value, (tuple, list)):
            raise ConfigError(f"URL parameter {key!r} is given {len(value)} times; give it once")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"URL parameter {key!r} is empty")
        found[key[len(PREFIX):]] = value.strip()
    return found


def config_from_url_query(query: Mapping[str, Any]) -> ClientConfig:
    """The config a URL asks for (ConfigError naming a bad parameter)."""
    params = split_url_params(query)
    if "socket" in params:
        params["socket_path"] = params.pop("socket")
    try:
        return make_config(**params)
    except ConfigError as err:
        # make_config names the setting; a URL user wrote connmon_<setting>
        raise ConfigError(str(err).replace("setting ", "URL parameter connmon_", 1)) from None


def strip_url_params(url: Any) -> Any:
    """``url`` (a SQLAlchemy URL) without any ``connmon_*`` parameter."""
    names = [k for k in url.query if k.startswith(PREFIX)]
    return url.difference_update_query(names) if names else url


# -- one setting each -------------------------------------------------------


def _program(value: Any) -> str:
    if value is None:
        return default_program_name()
    if not isinstance(value, str) or not value.strip():
        raise ConfigError("setting program_name must be a non-empty string")
    if len(value) > 256:
        raise ConfigError("setting program_name is longer than 256 characters")
    return value.strip()


def _socket(value: Any) -> str:
    if value is None:
        return paths.default_socket_path()
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError("setting socket must be a path")
    path = os.fspath(value)
    if not path or "\0" in path:
        raise ConfigError(f"setting socket is not a usable path: {path!r}")
    if len(os.fsencode(path)) > 107:
        raise ConfigError(f"setting socket is too long for a Unix socket path (107 bytes): {path!r}")
    return path


def _interval(value: Any) -> float:
    if value is None:
        return DEFAULT_INTERVAL
    if isinstance(value, bool):
        raise ConfigError(f"setting interval must be a positive number of seconds, not {value!r}")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"setting interval must be a positive number of seconds, not {value!r}"
        ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"setting interval must be a positive number of seconds, not {value!r}")
    if seconds < MIN_INTERVAL or seconds > MAX_INTERVAL:
        raise ConfigError(
            f"setting interval must be between {MIN_INTERVAL} and {MAX_INTERVAL:g} seconds, not {value!r}"
        )
    return seconds


def _service(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"setting service must be a name (letters, digits, '_', '.', '-'), not {value!r}"
        )
    return value


def _addr(value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    if isinstance(value, tuple) and len(value) == 2:
        host, port_text = value
        port_text = str(port_text)
    elif isinstance(value, str):
        host, sep, port_text = value.rpartition(":")
        if not sep:
            raise ConfigError(f"setting addr must be HOST:PORT, not {value!r} (no port)")
    else:
        raise ConfigError(f"setting addr must be HOST:PORT, not {value!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or any(c.isspace() for c in host) or "/" in host:
        raise ConfigError(f"setting addr must be HOST:PORT, not {value!r} (bad host)")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"setting addr must be HOST:PORT, not {value!r} (bad port)")
    return host, int(port_text)


def _secret_file(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value) or "\0" in os.fspath(value):
        raise ConfigError(f"setting secret_file must be a path, not {value!r}")
    return os.fspath(value)


def _where(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _ON:
        return True
    if isinstance(value, str) and value.lower() in _OFF:
        return False
    raise ConfigError(f"setting where must be on or off, not {value!r}")
