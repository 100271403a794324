"""The ``?`` screen: every key, column and colour, in words."""
from __future__ import annotations

from typing import Any

from .markup import Markup

HELP: list[tuple[str, str]] = [
    ("", "connmon console: who holds which database connections, live"),
    ("", ""),
    ("#Views", ""),
    ("1 2 3 4 5", "by program (host × program), by host, by database, by process, by pool"),
    ("Tab S-Tab", "next / previous view"),
    ("Enter", "drill down: a row's pools; a pool's detail (checkouts, holders, histogram)"),
    ("Esc", "back up one level (or clear the filter)"),
    ("#Rows", ""),
    ("↑ ↓ PgUp PgDn", "move; Home / End: first / last row; the selection follows its row"),
    ("< >", "sort by the column to the left / right"),
    ("capital letter", "sort by that column (shown in the footer); again: reverse"),
    ("r", "reverse the sort order"),
    ("/", "filter: regular expressions; Enter keeps it, Esc cancels"),
    ("", "  terms all must match; host: program: pid: db: pool: pick a field"),
    ("", "  a capital letter makes a term case-sensitive; a leading ! inverts"),
    ("!", "invert the filter"),
    ("i", "hide idle pools (show only pools holding a connection)"),
    ("g", "group by host, program, database, or not at all"),
    ("#Updates", ""),
    ("Space", "pause the display (updates are still received)"),
    ("+ -", "update less / more often"),
    ("q", "quit"),
    ("#Columns", ""),
    ("PROCS POOLS", "processes and pools in the row"),
    ("CONNS OUT IDLE", "connections open, checked out (in use), checked in (idle)"),
    ("CAP", "capacity: pool_size + max_overflow, summed over the row's pools"),
    ("WAIT", "threads waiting for a connection"),
    ("CO/S", "checkouts per second since the previous update"),
    ("FULL", "the fullest pool of the row: checked out / capacity"),
    ("HELD", "the longest current checkout"),
    ("SEEN", "time since the last report (process or host)"),
    ("HISTORY", "checked-out connections over the last minutes (peak per slot)"),
    ("↑n", "in the header: the maximum since start (or since the filter changed)"),
    ("#Colours", ""),
    ("yellow / red", "a checkout held past --hold-warn / --hold-crit seconds;"),
    ("", "a pool past --limit-warn of its capacity / at its limit or with waiters"),
    ("grey", "stale: silent past --stale-after seconds (dropped after --drop-after)"),
]


def help_lines() -> list[Markup]:
    out: list[Markup] = []
    for key, text in HELP:
        if key.startswith("#"):
            out.append([("section", key[1:])])
        elif key:
            out.append([("helpkey", f"  {key:<15}"), ("help", text)])
        else:
            out.append([("help", (" " * 17 if text.startswith("  ") else "") + text)])
    return out


def help_overlay(below: Any) -> Any:
    """The help screen as an urwid overlay over ``below``."""
    import urwid

    box = urwid.LineBox(urwid.ListBox(urwid.SimpleFocusListWalker(
        [urwid.Text(m) for m in help_lines()])), title="help: Esc or ? closes")
    return urwid.Overlay(box, below, "center", ("relative", 96), "middle", ("relative", 96),
                         min_width=40, min_height=8)
