"""Pool options of one database alias: parsed, validated, coded.

The same validation serves ``manage.py check`` (as system-check errors) and
the backends at run time (as ``ImproperlyConfigured``), so a setting that
passes the checks never fails later, and one that fails names its code.

Precedence, lowest first: defaults; django-mysqlpool's ``MYSQLPOOL_BACKEND``
and ``MYSQLPOOL_ARGUMENTS`` (MySQL aliases only, for those migrating from
it); ``DATABASES[alias]["POOL"]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

#: Pool classes the backends can build.
POOL_CLASSES = ("QueuePool", "NullPool")

#: Option name -> default.
DEFAULTS: dict[str, Any] = {
    "pool_class": "QueuePool",
    "pool_size": 5,
    "max_overflow": 10,
    "timeout": 30.0,
    # MySQL's wait_timeout defaults to 8 hours; an hour keeps well clear.
    "recycle": 3600,
    "pre_ping": False,
    "use_lifo": False,
    "report": True,
    # Re-run Django's session set-up (MySQL: SQL_AUTO_IS_NULL and the session
    # isolation level) on a checkout whose session may have changed, so a raw
    # SET SESSION never leaks into the next checkout. Free with pymysql (the
    # server flags changes); with mysqlclient a round trip per checkout,
    # which False saves (the set-up then runs only on new connections).
    "reset_session": True,
}

#: django-mysqlpool / SQLAlchemy argument names accepted in
#: MYSQLPOOL_ARGUMENTS, mapped to ours.
MYSQLPOOL_NAMES = {
    "pool_size": "pool_size",
    "max_overflow": "max_overflow",
    "timeout": "timeout",
    "recycle": "recycle",
    "pre_ping": "pre_ping",
    "use_lifo": "use_lifo",
}
#: Arguments SQLAlchemy dropped; accepted with a warning and ignored.
MYSQLPOOL_OBSOLETE = ("use_threadlocal", "echo", "logging_name", "reset_on_return")


@dataclass(frozen=True)
class Problem:
    """One bad setting: a check id (``django_connmon.E002``) and messages."""

    code: str
    msg: str
    hint: str = ""
    warning: bool = False

    @property
    def id(self) -> str:
        return f"django_connmon.{self.code}"

    def __str__(self) -> str:
        text = f"{self.id}: {self.msg}"
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class PoolOptions:
    """Validated pool settings of one alias."""

    pool_class: str = DEFAULTS["pool_class"]
    pool_size: int = DEFAULTS["pool_size"]
    max_overflow: int = DEFAULTS["max_overflow"]
    timeout: float = DEFAULTS["timeout"]
    recycle: int = DEFAULTS["recycle"]
    pre_ping: bool = DEFAULTS["pre_ping"]
    use_lifo: bool = DEFAULTS["use_lifo"]
    report: bool = DEFAULTS["report"]
    reset_session: bool = DEFAULTS["reset_session"]
    problems: tuple[Problem, ...] = field(default=(), compare=False)

    @property
    def capacity(self) -> int | None:
        """Most connections the pool opens at once; None if unbounded."""
        if self.pool_class == "NullPool" or self.max_overflow < 0 or self.pool_size == 0:
            return None
        return self.pool_size + self.max_overflow


def _is_int(v: Any) -> bool:
    return type(v) is int


def _is_num(v: Any) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _check_value(where: str, name: str, value: Any) -> Problem | None:
    if name == "pool_class":
        if value not in POOL_CLASSES:
            return Problem(
                "E007",
                f"{where} names pool class {value!r}",
                f"use one of {', '.join(POOL_CLASSES)}",
            )
    elif name == "pool_size":
        if not _is_int(value) or value < 0:
            return Problem(
                "E002",
                f"{where}['pool_size'] must be an integer >= 0, not {value!r}",
                "0 means no limit",
            )
    elif name == "max_overflow":
        if not _is_int(value) or value < -1:
            return Problem(
                "E003",
                f"{where}['max_overflow'] must be an integer >= -1, not {value!r}",
                "-1 means no limit",
            )
    elif name == "timeout":
        if not _is_num(value) or value <= 0:
            return Problem(
                "E004",
                f"{where}['timeout'] must be a number of seconds > 0, not {value!r}",
            )
    elif name == "recycle":
        if not _is_int(value) or (value < 1 and value != -1):
            return Problem(
                "E005",
                f"{where}['recycle'] must be whole seconds >= 1, or -1, not {value!r}",
                "-1 never recycles",
            )
    elif name in ("pre_ping", "use_lifo", "report", "reset_session"):
        if type(value) is not bool:
            return Problem("E006", f"{where}[{name!r}] must be True or False, not {value!r}")
    return None


def parse_pool_options(
    alias: str,
    settings_dict: Mapping[str, Any],
    *,
    vendor: str,
    mysqlpool_backend: Any = None,
    mysqlpool_arguments: Any = None,
) -> PoolOptions:
    """The pool options of ``alias``; every problem is in ``.problems``.

    Bad values are left at their defaults, so the result is always usable;
    callers decide whether problems are fatal (errors) or not (warnings).
    """
    values = dict(DEFAULTS)
    problems: list[Problem] = []

    if vendor == "mysql":
        if mysqlpool_backend is not None:
            p = _check_value("MYSQLPOOL_BACKEND", "pool_class", mysqlpool_backend)
            if p:
                problems.append(p)
            else:
                values["pool_class"] = mysqlpool_backend
        if mysqlpool_arguments is not None:
            if not isinstance(mysqlpool_arguments, Mapping):
                problems.append(
                    Problem("E008", f"MYSQLPOOL_ARGUMENTS must be a dict, not {type(mysqlpool_arguments).__name__}")
                )
            else:
                for key, value in mysqlpool_arguments.items():
                    if key in MYSQLPOOL_OBSOLETE:
                        problems.append(
                            Problem(
                                "W002",
                                f"MYSQLPOOL_ARGUMENTS[{key!r}] has no effect with django_connmon",
                                warning=True,
                            )
                        )
                        continue
                    name = MYSQLPOOL_NAMES.get(key)
                    if name is None:
                        problems.append(
                            Problem(
                                "E008",
                                f"MYSQLPOOL_ARGUMENTS has unknown argument {key!r}",
                                f"known: {', '.join(sorted(MYSQLPOOL_NAMES))}",
                            )
                        )
                        continue
                    p = _check_value("MYSQLPOOL_ARGUMENTS", name, value)
                    if p:
                        problems.append(p)
                    else:
                        values[name] = value

    where = f"DATABASES[{alias!r}]['POOL']"
    pool = settings_dict.get("POOL")
    if pool is not None:
        if not isinstance(pool, Mapping):
            problems.append(Problem("E001", f"{where} must be a dict, not {type(pool).__name__}"))
        else:
            for key, value in pool.items():
                if key not in DEFAULTS:
                    problems.append(
                        Problem(
                            "E001",
                            f"{where} has unknown option {key!r}",
                            f"known: {', '.join(sorted(DEFAULTS))}",
                        )
                    )
                    continue
                p = _check_value(where, key, value)
                if p:
                    problems.append(p)
                else:
                    values[key] = value

    if vendor == "postgresql" and settings_dict.get("OPTIONS", {}).get("pool"):
        problems.append(
            Problem(
                "E010",
                f"DATABASES[{alias!r}]['OPTIONS']['pool'] turns on Django's own psycopg pool, "
                "which cannot be combined with django_connmon's pool",
                f"remove it and use {where}",
            )
        )
    max_age = settings_dict.get("CONN_MAX_AGE", 0)
    if max_age != 0:
        problems.append(
            Problem(
                "W001",
                f"DATABASES[{alias!r}]['CONN_MAX_AGE'] = {max_age!r} is ignored by the pooled backend: "
                "connections go back to the pool at the end of every request",
                f"bound a connection's life with {where}['recycle'] instead",
                warning=True,
            )
        )
    return PoolOptions(**values, problems=tuple(problems))
