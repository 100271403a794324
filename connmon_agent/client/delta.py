"""What a delta report says about one pool: only what changed since the
pool was last reported on this connection.

The agent keeps each pool as the merge of the records it received on the
connection, so a delta record holds the pool's ``id`` and only the
top-level keys whose value changed (``protocol.validate_report`` documents
the shape):

* ``gauges``, ``counters``: the names whose value changed;
* ``name``, ``target``, ``config`` and any other key: when its value changed
  (in practice only in a pool's first record on a connection);
* ``checkouts``: when the list changed other than by ages growing (a
  checkout came or went, or its holder changed); the agent brings the ages
  of a list it keeps forward from the time it received it;
* ``hold``: when it changed, ``sum``, ``count`` and ``changed``, the
  ``[index, count, ...]`` pairs of the buckets whose count changed (the
  whole histogram, ``bounds`` and ``counts``, if the bounds changed).

Constraints: pure functions over report dicts, no locks and no I/O; they run
in the reporter thread, once per changed pool per interval.
"""
from __future__ import annotations

from typing import Any

_MISSING = object()


def pool_delta(last: dict[str, Any], now: dict[str, Any]) -> dict[str, Any] | None:
    """The delta record of pool snapshot ``now`` for an agent that holds
    ``last`` (the pool's previous snapshot sent on this connection), or None
    when nothing the agent shows changed. Neither argument is modified."""
    out: dict[str, Any] = {"id": now["id"]}
    for key, value in now.items():
        if key == "checkouts":
            before = last.get(key)
            if before is None or _sans_ages(before) != _sans_ages(value):
                out[key] = value
        elif key == "hold":
            before = last.get(key)
            if before != value:
                out[key] = _hold_delta(before, value)
        elif key == "gauges" or key == "counters":
            before = last.get(key)
            if before != value:
                if type(before) is dict and type(value) is dict:
                    value = {k: v for k, v in value.items() if before.get(k, _MISSING) != v}
                out[key] = value
        elif key != "id" and last.get(key, _MISSING) != value:
            out[key] = value
    return out if len(out) > 1 else None


def _hold_delta(before: Any, now: Any) -> Any:
    """The changed buckets of histogram ``now``, or all of it when its
    bounds are not those of ``before``."""
    if type(before) is not dict or type(now) is not dict or before.get("bounds") != now.get("bounds"):
        return now
    old, new = before.get("counts"), now.get("counts")
    if type(old) is not list or type(new) is not list or len(old) != len(new):
        return now
    changed: list[int] = []
    for i, (a, b) in enumerate(zip(old, new)):
        if a != b:
            changed += (i, b)
    out = {k: v for k, v in now.items() if k != "bounds" and k != "counts"}
    out["changed"] = changed
    return out


def _sans_ages(checkouts: Any) -> Any:
    if type(checkouts) is not list:
        return checkouts
    return [{k: v for k, v in co.items() if k != "age"} if type(co) is dict else co for co in checkouts]
