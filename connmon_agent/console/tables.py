"""Tables: the rows of one view of the latest records, filtered, grouped
and sorted, with the header's totals and per-database lines.

``TableBuilder.build`` runs once per refresh over every record (10,000
processes: a share of a 100 ms budget), so it groups records with one
dict pass, sums big rows with C-level passes (see ``rows``) and sorts
with key functions that are C attribute getters wherever a field is
never None. No urwid, no sockets.
"""
from __future__ import annotations

from itertools import groupby
from operator import attrgetter
from typing import Any, Callable, Iterable

from .columns import Column
from .records import PoolRecord, Records
from .rows import HostRow, RecordRow, Row, Totals, bucket
from .settings import ViewSpec

#: The row key of a record in each view.
VIEW_KEY: dict[str, Callable[[PoolRecord], tuple]] = {
    "program": attrgetter("prog_key"),
    "host": lambda r: (r.host,),
    "database": lambda r: (r.target,),
    "process": attrgetter("proc_key"),
    "pool": attrgetter("pool_key"),
}
#: The record field each grouping groups by.
GROUP_FIELD = {"host": "host", "program": "program", "database": "target"}
#: The history series of a group's header row.
GROUP_HISTORY = {"host": "host", "program": "program name", "database": "database"}
#: Groupings a view's key already determines (no row is split by them).
DETERMINED = {
    "program": {"host", "program"},
    "host": {"host"},
    "database": {"database"},
    "process": {"host", "program"},
    "pool": {"host", "program", "database"},
}
GETTERS: dict[str, Callable[[PoolRecord], Any]] = {
    f: attrgetter(f) for f in ("host", "program", "pid", "target", "name", "started")
}
#: The record fields a view's row shows besides its figures.
LABELS = {
    "program": ("host", "program"),
    "host": ("host",),
    "database": ("target",),
    "process": ("host", "program", "pid", "started"),
    "pool": ("host", "program", "pid", "started", "target", "name"),
}
#: Figures that are never None: sorted by a C attribute getter.
_NEVER_NONE = {"processes", "pools", "connections", "checked_out", "idle", "waiters", "rate",
               "longest"}
_KEY = attrgetter("key")
_PROC_KEY = attrgetter("proc_key")
_TARGET = attrgetter("target")


class Table:
    """What one view shows at one moment."""

    def __init__(self, spec: ViewSpec, columns: tuple[Column, ...], sort: Column,
                 reverse: bool, rows: list[Row], totals: Totals,
                 databases: list[Row], maxima: dict[str, float]) -> None:
        self.spec = spec
        self.columns = columns
        self.sort = sort
        self.reverse = reverse
        self.rows = rows
        self.totals = totals
        self.databases = databases
        self.maxima = maxima

    def index_of(self, key: tuple | None) -> int | None:
        """The position of the row with ``key``, or None."""
        if key is None:
            return None
        try:
            return list(map(_KEY, self.rows)).index(key)
        except ValueError:
            return None


def sort_value(col: Column) -> Callable[[Row], Any]:
    """The sort key of a column: numbers (None lowest), else names."""
    field = col.field
    if col.numeric:
        if field in _NEVER_NONE:
            return attrgetter(field)

        def value(row: Row) -> Any:
            v = getattr(row, field)
            return -1 if v is None else v
    else:
        def value(row: Row) -> Any:
            v = getattr(row, field)
            return (0, v) if isinstance(v, (int, float)) else (1, "" if v is None else str(v))
    return value


class TableBuilder:
    """Builds tables; remembers the last (view, grouping) that split rows,
    so the model keeps a history for those rows too."""

    def __init__(self) -> None:
        self.split: tuple[str, str] | None = None

    @staticmethod
    def row_key(view: str, group: str | None) -> Callable[[PoolRecord], tuple]:
        """The key of a record's row; grouped rows' keys start with the
        group, so no row shares its key with a group header."""
        vkey = VIEW_KEY[view]
        if group is None:
            return vkey
        gfield = attrgetter(GROUP_FIELD[group])
        return lambda r: (gfield(r),) + vkey(r)

    def build(self, state: Records, spec: ViewSpec, col: Column,
              descending: bool) -> tuple[list[Row], Totals, list[Row]]:
        """The rows, totals and database lines of ``spec`` over ``state``."""
        view, group = spec.view, spec.group
        split = group is not None and group not in DETERMINED[view]
        self.split = (view, group) if split else None   # type: ignore[assignment]
        pooled_only = view in ("database", "pool") or group == "database"
        records = state.records
        if pooled_only:
            records = [r for r in records if r.pool is not None]
        keep = predicate(spec)
        if keep is not None:
            records = list(filter(keep, records))
        # Everything shown: the groupings the records were read with serve.
        whole = keep is None
        by_target = state.by_target if whole else bucket(
            [r for r in records if r.pool is not None], _TARGET)
        buckets = None
        if whole and group is None and view == "program":
            buckets = state.by_prog
        elif group is None and view == "database":
            buckets = {(t,): ms for t, ms in by_target.items()}
        rows = self._rows(records, view, group, split, buckets)
        # Hosts without processes (a cluster's idle hosts) are shown too,
        # wherever rows are not only pools.
        empty = [] if pooled_only or not state.empty_hosts else _empty_hosts(state.empty_hosts, keep)
        if view == "host":
            rows = self._host_rows(rows, state, empty, group)
        if view == "database" and group is None:
            databases = list(rows)
        else:
            databases = []
            for target, members in by_target.items():
                db = Row((target,)).take(members)
                db.target = target
                databases.append(db)
        if whole:
            census = state.pooled_census if pooled_only else state.census
            totals = Totals.of_parts(databases, *census)
        else:
            totals = Totals(records)
            totals.hosts += len(empty)
        databases.sort(key=_TARGET)
        # Ties keep a stable order: by key, always ascending.
        rows.sort(key=_KEY)
        rows.sort(key=sort_value(col), reverse=descending)
        if group is not None:
            rows = self._grouped(rows, records, group)
        return rows, totals, databases

    def _rows(self, records: list[PoolRecord], view: str, group: str | None, split: bool,
              buckets: dict[Any, list[PoolRecord]] | None) -> list[Row]:
        """One row per key; ``buckets``, when given, are ``records``
        already grouped by the view's key (the records' own groupings)."""
        labels = LABELS[view]
        if group == "database" and "target" not in labels:
            labels += ("target",)
        elif group == "program" and "program" not in labels:
            labels += ("program",)
        gfield = attrgetter(GROUP_FIELD[group]) if group else None
        key_of = self.row_key(view, group)
        one = view in ("host", "database")
        if split:
            name = f"split {view} {group}"
            history_of: Callable[[tuple], tuple] = lambda key: (name, key)  # noqa: E731
        elif group:
            history_of = lambda key: (view, key[1] if one else key[1:])  # noqa: E731
        else:
            history_of = lambda key: (view, key[0] if one else key)  # noqa: E731
        rows: list[Any] = []
        append = rows.append
        if view == "pool":
            # Every pool record is a row of its own.
            for r in records:
                key = key_of(r)
                append(RecordRow(key, r, history_of(key), gfield(r) if gfield else None))
            return rows
        if buckets is not None:
            groups: Iterable[tuple[Any, list[PoolRecord]]] = buckets.items()
        elif view == "process" and not split:
            # A process's records are consecutive (records come process by process).
            groups = ((k, list(g)) for k, g in groupby(records, _PROC_KEY))
            if group:
                groups = ((key_of(ms[0]), ms) for _, ms in groups)
        else:
            groups = bucket(records, key_of).items()
        # A host's row carries more than its records' figures (see _host_rows).
        make, single = (HostRow, False) if view == "host" else (Row, True)
        for key, members in groups:
            first = members[0]
            g = gfield(first) if gfield else None
            if single and len(members) == 1:
                append(RecordRow(key, first, history_of(key), g))
                continue
            row = make(key).take(members)
            for f in labels:
                setattr(row, f, getattr(first, f))
            row.history_key = history_of(key)
            row.group = g
            append(row)
        return rows

    @staticmethod
    def _host_rows(rows: list[Any], state: Records, empty: list[str], group: str | None) -> list[Any]:
        """The host view's rows with each host's last-heard age and
        staleness from the state's hosts list, plus a row for each host
        in ``empty`` (no processes) when the rows are not split."""
        hosts = state.hosts
        for row in rows:
            info = hosts.get(row.host)
            if info is None or info[0] is None:
                # Not in the agent's list: heard when its newest report came.
                row.last_heard_age = row.last_report_age
            else:
                row.last_heard_age = info[0]
            if info is not None and info[1]:
                row.heard_stale = True
        if group not in (None, "host"):
            return rows
        for name in empty:
            row = HostRow((name,) if group is None else (name, name))
            row.host = name
            row.last_heard_age, row.heard_stale = hosts[name]
            row.history_key = ("host", name)
            if group is not None:
                row.group = name
            rows.append(row)
        return rows

    @staticmethod
    def _grouped(rows: list[Row], records: list[PoolRecord], group: str) -> list[Row]:
        field = GROUP_FIELD[group]
        members: dict[Any, list[Row]] = {}
        for row in rows:
            members.setdefault(row.group, []).append(row)
        by_group = bucket(records, attrgetter(field))
        out: list[Row] = []
        for g in sorted(members, key=lambda v: (v is None, str(v))):
            grow = Row((g,), "group").take(by_group.get(g, []))
            grow.group = g
            grow.history_key = (GROUP_HISTORY[group], g)
            setattr(grow, field, g)
            out.append(grow)
            out.extend(members[g])
        return out


class _HostOnly:
    """What a filter sees of a host without processes: its name."""

    __slots__ = ("host",)
    program = target = name = pid = ""
    started = None
    checked_out = 0

    def __init__(self, host: str) -> None:
        self.host = host


def _empty_hosts(names: list[str], keep: Callable[[Any], bool] | None) -> list[str]:
    """The hosts of ``names`` (none with processes) that ``keep`` lets through."""
    if keep is None:
        return names
    return [n for n in names if keep(_HostOnly(n))]


def predicate(spec: ViewSpec) -> Callable[[PoolRecord], bool] | None:
    """The test a record passes to be shown in ``spec``, or None for all."""
    checks: list[Callable[[PoolRecord], bool]] = []
    for fieldname, value in spec.scope:
        get = GETTERS[fieldname]
        checks.append(lambda r, get=get, value=value: get(r) == value)
    if spec.hide_idle:
        checks.append(lambda r: r.checked_out > 0)
    flt = spec.filter.predicate(spec.view, GETTERS)
    if flt is not None:
        checks.append(flt)
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda r: all(c(r) for c in checks)
