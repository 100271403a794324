"""How a pool is named in reports: its database target (never the
password), its display name and its configuration."""
from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from ..errors import ConfigError

#: Ports filled in when a URL names a host but no port, so that
#: ``mysql://db/x`` and ``mysql://db:3306/x`` are one database target.
DEFAULT_PORTS = {"mysql": 3306, "mariadb": 3306, "postgresql": 5432, "mssql": 1433, "oracle": 1521}


def parse_url(url: Any) -> Any:
    """A SQLAlchemy URL from a string or URL (ConfigError when unparseable)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)
    except Exception as err:  # ArgumentError, ValueError: all the caller's mistake
        raise ConfigError(f"url is not a database URL: {err}") from None


def target_of(url: Any, dialect: Any = None) -> str:
    """``dialect+driver://user@host:port/database``: no password, no query."""
    if url is None:
        return "unknown://"
    if dialect is not None:
        drivername = f"{dialect.name}+{dialect.driver}"
        backend = dialect.name
    else:
        drivername = url.drivername
        backend = url.get_backend_name()
    netloc = ""
    if url.username:
        netloc = quote(url.username, safe="") + "@"
    if url.host:
        host = url.host
        netloc += f"[{host}]" if ":" in host else host
        port = url.port or DEFAULT_PORTS.get(backend)
        if port:
            netloc += f":{port}"
    return f"{drivername}://{netloc}/{url.database or ''}"


def name_of(kind: str, url: Any) -> str:
    """``Engine(mysql+pymysql://nova@db/nova)``: the URL as given, without
    password and query."""
    if url is None:
        return f"{kind}()"
    from sqlalchemy.engine import URL

    # (URL.set(password=None) keeps the password: None means "unchanged")
    clean = URL.create(url.drivername, url.username, None, url.host, url.port, url.database)
    return f"{kind}({clean.render_as_string(hide_password=False)})"


def pool_config(pool: Any) -> dict[str, Any]:
    """``class``, ``size``, ``max_overflow``, ``timeout``, ``recycle`` and
    ``pre_ping`` of a pool.

    ``size`` is None for pools without a limit (NullPool); ``max_overflow``
    is QueuePool's own value (-1 means no limit).
    """
    from sqlalchemy import pool as sapool

    size: int | None = None
    max_overflow: int | None = None
    timeout: float | None = None
    if isinstance(pool, sapool.QueuePool):
        size = int(pool.size())
        max_overflow = int(getattr(pool, "_max_overflow", 0))
        timeout = float(pool.timeout())
        if not math.isfinite(timeout):
            timeout = None
    elif isinstance(pool, sapool.SingletonThreadPool):
        size = int(getattr(pool, "size", 5))
        max_overflow = 0
    elif isinstance(pool, (sapool.StaticPool, sapool.AssertionPool)):
        size, max_overflow = 1, 0
    recycle = getattr(pool, "_recycle", -1)
    return {
        "class": type(pool).__name__,
        "size": size,
        "max_overflow": max_overflow,
        "timeout": timeout,
        "recycle": int(recycle) if isinstance(recycle, (int, float)) else -1,
        "pre_ping": bool(getattr(pool, "_pre_ping", False)),
    }


def overflow_of(pool: Any) -> int:
    """Overflow connections in use (0 for pools without overflow)."""
    overflow = getattr(pool, "overflow", None)
    if overflow is None:
        return 0
    try:
        value = int(overflow())
    except Exception:
        return 0
    return value if value > 0 else 0


def waiters_of(pool: Any) -> int:
    """Threads waiting for a connection in a QueuePool's queue (0 when not
    measurable)."""
    queue = getattr(pool, "_pool", None)
    cond = getattr(queue, "not_empty", None)
    waiters = getattr(cond, "_waiters", None)
    try:
        return len(waiters) if waiters is not None else 0
    except Exception:
        return 0
