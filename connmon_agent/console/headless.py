"""The console's headless twin: ``connmon-agent console --once --json|--csv``.

It runs the same data path as the screen (the model's tables, with the
same view, sort, filter, idle and grouping options) and prints one table
for scripts and cron. Field names are stable; see ``row_fields``.
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

from .columns import COLUMNS, OUTPUT_NAMES
from .model import Model, Row, Table
from .settings import ViewSpec

SCHEMA = 1

#: Per-view identity fields printed before the view's columns.
IDENTITY = {
    "program": (),
    "host": (),
    "database": (),
    "process": ("started",),
    "pool": ("started",),
}


def row_fields(view: str, grouped: bool) -> list[str]:
    """The field names of one output row of ``view``, in order."""
    fields = ["kind"]
    if grouped:
        fields.append("group")
    for col in COLUMNS[view]:
        if col.field != "history":
            fields.append(OUTPUT_NAMES.get(col.field, col.field))
    fields += list(IDENTITY[view])
    fields.append("stale")
    return fields


def _value(row: Row, attr: str) -> Any:
    v = getattr(row, attr, None)
    if isinstance(v, float):
        if attr == "rate":
            return round(v, 2)
        return round(v, 3)
    return v


def row_dict(view: str, row: Row, grouped: bool) -> dict[str, Any]:
    inverse = {v: k for k, v in OUTPUT_NAMES.items()}
    out: dict[str, Any] = {}
    for name in row_fields(view, grouped):
        if name == "kind":
            out[name] = row.kind
        elif name == "group":
            out[name] = row.group
        else:
            out[name] = _value(row, inverse.get(name, name))
    return out


def totals_dict(table: Table) -> dict[str, Any]:
    t = table.totals
    m = table.maxima
    return {
        "hosts": t.hosts, "processes": t.processes, "pools": t.pools,
        "connections": t.connections, "checked_out": t.checked_out, "idle": t.idle,
        "waiters": t.waiters, "checkouts_per_sec": round(t.rate, 2),
        "longest_checkout": round(t.longest, 3),
        "max": {OUTPUT_NAMES.get(k, k): (round(v, 2) if isinstance(v, float) else v) for k, v in m.items()},
    }


def databases_list(table: Table) -> list[dict[str, Any]]:
    out = []
    for db in table.databases:
        cap = db.capacity
        out.append({
            "target": db.target, "processes": db.processes, "pools": db.pools,
            "connections": db.connections, "checked_out": db.checked_out, "idle": db.idle,
            "waiters": db.waiters, "capacity": cap,
            "use": round(db.connections / cap, 3) if cap else None,
        })
    return out


def to_json(model: Model, table: Table) -> str:
    spec = table.spec
    state = model.state or {}
    grouped = spec.group is not None
    doc = {
        "schema": SCHEMA,
        "generated_at": state.get("generated_at"),
        "agent": state.get("agent"),
        "view": spec.view,
        "sort": OUTPUT_NAMES.get(table.sort.field, table.sort.field),
        "descending": table.reverse,
        "filter": spec.filter.describe() or None,
        "hide_idle": spec.hide_idle,
        "group": spec.group,
        "totals": totals_dict(table),
        "databases": databases_list(table),
        "rows": [dict(row_dict(spec.view, r, grouped), history=model.history_of(r))
                 for r in table.rows],
    }
    return json.dumps(doc, indent=2, sort_keys=False)


def to_csv(table: Table) -> str:
    spec = table.spec
    grouped = spec.group is not None
    fields = row_fields(spec.view, grouped)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in table.rows:
        d = row_dict(spec.view, r, grouped)
        w.writerow({k: _csv_value(v) for k, v in d.items()})
    return buf.getvalue()


def _csv_value(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def render_once(states: Iterable[dict[str, Any]], spec: ViewSpec, fmt: str, model: Model) -> str:
    """Ingest ``states`` (oldest first; two give rates) and format one table."""
    for s in states:
        model.ingest(s)
    table = model.table(spec)
    return to_json(model, table) if fmt == "json" else to_csv(table)
