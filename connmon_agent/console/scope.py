"""Drill-down scopes: which records a row of a view stands for, as
(field, value) pairs the pool view narrows to. No urwid, no sockets."""
from __future__ import annotations

from typing import Iterable

from .rows import Row
from .settings import ViewSpec
from .tables import GROUP_FIELD


def scope_of(spec: ViewSpec, row: Row) -> tuple[tuple[str, object], ...]:
    """The drill-down scope of a row: the current scope narrowed by the
    fields that make the row's key (and its group's)."""
    scope = dict(spec.scope)
    if spec.group is not None:
        scope[GROUP_FIELD[spec.group]] = row.group
    if row.kind == "row":
        view = spec.view
        if view in ("program", "host", "process"):
            scope["host"] = row.host
        if view == "program":
            scope["program"] = row.program
        elif view == "database":
            scope["target"] = row.target
        elif view == "process":
            scope["pid"] = row.pid
            scope["started"] = row.started
    return tuple(scope.items())


def describe_scope(scope: Iterable[tuple[str, object]]) -> str:
    names = {"target": "db"}
    return " ".join(f"{names.get(k, k)}={v}" for k, v in scope if k != "started")
