"""System checks: bad pool settings fail ``manage.py check`` with codes.

==========  ==================================================================
id          problem
==========  ==================================================================
E001        ``POOL`` is not a dict, or has an unknown option
E002        ``pool_size`` is not an integer >= 0
E003        ``max_overflow`` is not an integer >= -1
E004        ``timeout`` is not a number > 0
E005        ``recycle`` is not whole seconds >= 1 or -1
E006        ``pre_ping`` / ``use_lifo`` / ``report`` / ``reset_session`` is not a boolean
E007        ``MYSQLPOOL_BACKEND`` (or ``pool_class``) names an unknown pool class
E008        ``MYSQLPOOL_ARGUMENTS`` is not a dict or has an unknown argument
E009        a ``CONNMON_*`` setting has a bad value (``CONNMON_SECRET_FILE``:
            not a readable private secret file of 16+ bytes)
E010        Django's own psycopg pool (``OPTIONS["pool"]``) is also turned on
W001        ``CONN_MAX_AGE`` is ignored by the pooled backends
W002        a django-mysqlpool argument has no effect
==========  ==================================================================

Registered by ``django_connmon.apps`` (the app must be in
``INSTALLED_APPS`` for the checks; the backends work without it).
"""
from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.core import checks

from .options import Problem, parse_pool_options

ENGINES = {
    "django_connmon.backends.mysql": "mysql",
    "django_connmon.backends.postgresql": "postgresql",
    "django_connmon.backends.sqlite3": "sqlite",
}


def _message(p: Problem) -> checks.CheckMessage:
    cls = checks.Warning if p.warning else checks.Error
    return cls(p.msg, hint=p.hint or None, id=p.id)


def check_pools(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every pooled alias's POOL, MYSQLPOOL_* and CONN_MAX_AGE."""
    from .conf import conf

    out: list[checks.CheckMessage] = []
    for alias, sd in getattr(settings, "DATABASES", {}).items():
        vendor = ENGINES.get(sd.get("ENGINE", "").rstrip("."))
        if vendor is None:
            continue
        options = parse_pool_options(
            alias, sd, vendor=vendor,
            mysqlpool_backend=conf.MYSQLPOOL_BACKEND,
            mysqlpool_arguments=conf.MYSQLPOOL_ARGUMENTS,
        )
        out.extend(_message(p) for p in options.problems)
    return out


@checks.register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    out: list[checks.CheckMessage] = []
    # Not under the database tag: that one runs only with --database, and
    # these are settings, read without connecting.
    out.extend(check_pools(app_configs))
    for name in ("CONNMON_PROGRAM_NAME", "CONNMON_SOCKET", "CONNMON_ADDR", "CONNMON_SERVICE", "CONNMON_SECRET_FILE"):
        value = getattr(settings, name, None)
        if value is not None and (not isinstance(value, str) or not value):
            out.append(checks.Error(f"{name} must be a non-empty string, not {value!r}", id="django_connmon.E009"))
    addr = getattr(settings, "CONNMON_ADDR", None)
    if isinstance(addr, str) and addr:
        host, _, port = addr.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            out.append(checks.Error(f"CONNMON_ADDR must be host:port, not {addr!r}", id="django_connmon.E009"))
    secret_file = getattr(settings, "CONNMON_SECRET_FILE", None)
    if isinstance(secret_file, str) and secret_file:
        out.extend(_secret_problems(secret_file))
    interval = getattr(settings, "CONNMON_INTERVAL", None)
    if interval is not None and (type(interval) not in (int, float) or not math.isfinite(interval) or interval <= 0):
        out.append(checks.Error(f"CONNMON_INTERVAL must be a number of seconds > 0, not {interval!r}", id="django_connmon.E009"))
    for name in ("CONNMON_REPORT", "CONNMON_LEAK_LOG"):
        value = getattr(settings, name, None)
        if value is not None and type(value) is not bool:
            out.append(checks.Error(f"{name} must be True or False, not {value!r}", id="django_connmon.E009"))
    return out


def _secret_problems(path: str) -> list[checks.CheckMessage]:
    """CONNMON_SECRET_FILE must be a secret file the client accepts (read
    as the TCP transport reads it: private, owned by this user, 16+ bytes)."""
    from connmon_agent.auth import load_secret
    from connmon_agent.errors import ConfigError

    try:
        load_secret(path)
    except ConfigError as err:
        return [checks.Error(f"CONNMON_SECRET_FILE: {err}", id="django_connmon.E009")]
    return []
