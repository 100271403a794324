"""The status dict as a readable plain-text table (``connmon-agent status``).

Pure function of the status dict: no sockets, no terminal control."""
from __future__ import annotations

from typing import Any, Sequence

from .rollup import pool_capacity

#: How many holders a pool row lists (the longest-held first).
MAX_HOLDERS = 3


def _cap(value: Any) -> str:
    return "-" if value is None else str(value)


def _age(seconds: float | None) -> str:
    if not seconds:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _grid(headers: Sequence[str], rows: list[list[str]], left: int, last_left: bool = False) -> list[str]:
    """Aligned columns: the first ``left`` (and with ``last_left`` the last)
    are left-aligned text, the others right-aligned numbers."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        last = len(cells) - 1
        out = [c.ljust(w) if i < left or (last_left and i == last) else c.rjust(w)
               for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()

    return [line(headers)] + [line(r) for r in rows]


def _usage(roll: dict[str, Any]) -> list[str]:
    g = roll["gauges"]
    return [str(g["checked_out"]), str(g["checked_in"]), str(g["connections"]), _cap(roll["capacity"]), _age(roll["longest_checkout"])]


USAGE = ["OUT", "IDLE", "OPEN", "CAP", "LONGEST"]


def _holders(pool: dict[str, Any]) -> str:
    checkouts = sorted(pool.get("checkouts") or [], key=lambda c: -c["age"])
    parts = [f"{c.get('holder') or '?'} {_age(c['age'])}" for c in checkouts[:MAX_HOLDERS]]
    more = max(len(checkouts), pool.get("checkouts_total") or 0) - len(parts)
    if more > 0:
        parts.append(f"+{more} more")
    return ", ".join(parts)


def render(state: dict[str, Any]) -> str:
    """The whole status as text, one section per roll-up level."""
    agent = state["agent"]
    stats = agent.get("stats", {})
    lines = [
        f"connmon agent {agent.get('version', '?')} on {agent.get('host')} "
        f"(pid {agent.get('pid')}, up {_age(agent.get('uptime')) if agent.get('uptime') else '0s'}) at {agent.get('socket')}",
        "clients {clients}  reports {reports}  bad frames {bad_frames}  rejected {rejected}  "
        "dropped by clients {dropped_by_clients}".format(**{k: stats.get(k, 0) for k in
            ("clients", "reports", "bad_frames", "rejected", "dropped_by_clients")}),
        "",
    ]
    rows = [[h["host"] + (" (stale)" if h.get("stale") else ""), str(h["processes"]), str(h["pools"]), *_usage(h),
             _age(h.get("last_heard_age")) if h.get("last_heard_age") else "now"] for h in state["hosts"]]
    if not state["processes"]:
        lines.append("no processes are reporting")
        if rows:  # a cluster node shows every host, even idle ones
            lines += ["", *_grid(["HOST", "PROCS", "POOLS", *USAGE, "HEARD"], rows, 1)]
        return "\n".join(lines) + "\n"
    t = state["totals"]
    lines.append(f"TOTAL  {t['processes']} processes, {t['pools']} pools")
    lines.append("")
    lines += _grid(["HOST", "PROCS", "POOLS", *USAGE, "HEARD"], rows, 1)
    lines.append("")
    rows = [[p["program"] or "?", p["host"], str(p["processes"]), str(p["pools"]), *_usage(p)] for p in state["programs"]]
    lines += _grid(["PROGRAM", "HOST", "PROCS", "POOLS", *USAGE], rows, 2)
    lines.append("")
    rows = [[d["target"], str(d["processes"]), str(d["pools"]), *_usage(d)] for d in state["databases"]]
    lines += _grid(["DATABASE", "PROCS", "POOLS", *USAGE], rows, 1)
    lines.append("")
    rows = []
    for proc in state["processes"]:
        label = f"{proc['host']} {proc['pid']} {proc['program'] or '?'}" + (" (stale)" if proc.get("stale") else "")
        rows.append([label, "", *_usage(proc), ""])
        for pool in proc["pools"]:
            g = pool.get("gauges") or {}
            rows.append([
                "  " + pool["name"], (pool.get("config") or {}).get("class", "") or "",
                str(g.get("checked_out", 0)), str(g.get("checked_in", 0)), str(g.get("connections", 0)),
                _cap(pool_capacity(pool.get("config") or {})),
                _age(max((c["age"] for c in pool.get("checkouts") or []), default=0)),
                _holders(pool),
            ])
    lines += _grid(["PROCESS / POOL", "CLASS", *USAGE, "HOLDERS"], rows, 2, last_left=True)
    return "\n".join(lines) + "\n"
