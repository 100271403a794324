"""What the console shows and when it colours it: thresholds and the
view specification (view, sort, filter, grouping). Plain data; no urwid."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import ConfigError
from .filters import RowFilter

VIEWS = ("program", "host", "database", "process", "pool")
GROUPS = (None, "host", "program", "database")

OK, WARN, CRIT = None, "warn", "crit"


@dataclass(frozen=True)
class Thresholds:
    """When a value is coloured. Seconds unless named otherwise."""

    hold_warn: float = 5.0      # a checkout held this long is yellow
    hold_crit: float = 30.0     # ... and this long red
    limit_warn: float = 0.8     # a pool this full (checked out / capacity) is yellow; full is red
    stale_after: float = 5.0    # a process silent this long is shown stale (dim)
    drop_after: float = 60.0    # ... and this long is not shown at all (0: never)

    def __post_init__(self) -> None:
        for name in ("hold_warn", "hold_crit", "stale_after", "drop_after"):
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must not be negative")
        if self.hold_crit < self.hold_warn:
            raise ConfigError("--hold-crit must not be below --hold-warn")
        if not 0 < self.limit_warn <= 1:
            raise ConfigError("--limit-warn must be a fraction in (0, 1]")

    def hold_level(self, age: float) -> str | None:
        if age >= self.hold_crit:
            return CRIT
        if age >= self.hold_warn and age > 0:
            return WARN
        return OK

    def limit_level(self, fullest: float | None, waiters: int = 0) -> str | None:
        if waiters > 0 or (fullest is not None and fullest >= 1.0):
            return CRIT
        if fullest is not None and fullest >= self.limit_warn:
            return WARN
        return OK


@dataclass(frozen=True)
class ViewSpec:
    """One way of looking at the state: everything that decides the rows.

    ``scope`` narrows to the records of one row of another view (drill-down):
    a tuple of (field, value) pairs that must all be equal.
    """

    view: str = "program"
    sort: str | None = None          # a column field; None: the view's default
    reverse: bool | None = None      # None: the column's natural order
    filter: RowFilter = field(default_factory=RowFilter)
    hide_idle: bool = False
    group: str | None = None
    scope: tuple[tuple[str, object], ...] = ()

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ConfigError(f"unknown view {self.view!r} (one of {', '.join(VIEWS)})")
        if self.group not in GROUPS:
            raise ConfigError(f"unknown grouping {self.group!r} (host, program or database)")

    def replace(self, **changes: object) -> "ViewSpec":
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
