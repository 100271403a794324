"""The console's model: states in, tables of rows out.

``Model.ingest(state)`` takes each state the agent pushes; ``Model.table(spec)``
turns the latest one into the rows of a view (filtered, grouped, sorted),
the header's totals and the per-database capacity lines. The screen and the
headless twin (``--once``) both read tables from here, so they always show
the same data. No urwid, no sockets; not thread-safe (the loop owns it).
"""
from __future__ import annotations

from operator import attrgetter
from typing import Any

from .columns import COLUMNS, DEFAULT_SORT, Column, column_for
from .history import History
from .records import PoolRecord, Records
from .rows import Row, Totals, bucket
from .settings import Thresholds, ViewSpec
from .scope import describe_scope, scope_of
from .tables import GETTERS, Table, TableBuilder

__all__ = ["GETTERS", "Model", "Row", "Table", "Totals", "describe_scope", "scope_of"]

_POOL_KEY = attrgetter("pool_key")
_OUT = attrgetter("checked_out")


class Model:
    """States in, tables out; keeps the history and the header maxima."""

    def __init__(self, thresholds: Thresholds | None = None, history: History | None = None) -> None:
        self.thresholds = thresholds or Thresholds()
        self.records = Records(self.thresholds)
        self.history = history if history is not None else History()
        self.updates = 0
        self.builder = TableBuilder()
        self._maxima: dict[str, float] = {}
        self._maxima_for: tuple | None = None

    @property
    def state(self) -> dict[str, Any] | None:
        return self.records.state

    @property
    def generated_at(self) -> float:
        return self.records.generated_at

    # -- ingest ---------------------------------------------------------------

    def ingest(self, state: dict[str, Any]) -> None:
        """Take one state: records, rates, and one history sample of
        checked-out connections for the rows of every view (so a view
        switched to has its sparklines already)."""
        records = self.records.ingest(state)
        self.updates += 1
        recs = self.records
        program = {k: sum(map(_OUT, ms)) for k, ms in recs.by_prog.items()}
        name: dict[Any, int] = {}
        host: dict[Any, int] = {}
        for (h, p), out in program.items():
            name[p] = name.get(p, 0) + out
            host[h] = host.get(h, 0) + out
        for h in recs.empty_hosts:
            host[h] = 0
        database = {k: sum(map(_OUT, ms)) for k, ms in recs.by_target.items()}
        pooled = recs.by_pool.values()
        pool = zip(map(_POOL_KEY, pooled), map(_OUT, pooled))
        series = {"program": program, "program name": name, "host": host, "database": database,
                  "process": recs.process_out, "pool": pool,
                  "totals": {None: sum(program.values())}}
        split = self.builder.split
        if split is not None:
            view, group = split
            key = self.builder.row_key(view, group)
            pooled_list = [r for r in records if r.pool is not None]
            series["split %s %s" % split] = {k: sum(map(_OUT, ms))
                                            for k, ms in bucket(pooled_list, key).items()}
        self.history.record(self.generated_at, series)

    def pool(self, pool_key: tuple) -> PoolRecord | None:
        """The record of one pool in the latest state (for the detail view)."""
        return self.records.by_pool.get(pool_key)

    # -- tables ---------------------------------------------------------------

    def resolve_sort(self, spec: ViewSpec) -> tuple[Column, bool]:
        col = column_for(spec.view, spec.sort) if spec.sort else None
        if col is None:
            col = column_for(spec.view, DEFAULT_SORT)
        assert col is not None
        # Numbers biggest first, names A to Z; ``reverse`` flips that.
        descending = col.numeric
        if spec.reverse:
            descending = not descending
        return col, descending

    def table(self, spec: ViewSpec) -> Table:
        col, descending = self.resolve_sort(spec)
        rows, totals, databases = self.builder.build(self.records, spec, col, descending)
        maxima = self._update_maxima(spec, totals)
        return Table(spec, COLUMNS[spec.view], col, descending, rows, totals, databases, maxima)

    def _update_maxima(self, spec: ViewSpec, totals: Totals) -> dict[str, float]:
        # Maxima are of what is shown: they start over when the filter,
        # the idle switch or the drill-down scope changes what that is.
        shown = (spec.filter.describe(), spec.hide_idle, spec.scope)
        if shown != self._maxima_for:
            self._maxima_for = shown
            self._maxima = {}
        m = self._maxima
        for field in ("hosts", "processes", "pools", "connections", "checked_out", "idle", "rate"):
            v = getattr(totals, field)
            if v > m.get(field, 0):
                m[field] = v
            m.setdefault(field, v)
        return dict(m)

    def history_of(self, row: Row) -> list[float | None]:
        return self.history.values(row.history_key)
