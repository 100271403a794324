"""The columns of each view: field, title, width, sort key, format.

Field names are the stable names of the headless output (``--json``,
``--csv``); titles and widths are the screen's. No urwid here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def fmt_count(n: Any) -> str:
    if n is None:
        return "-"
    n = int(n)
    if n < 100_000:
        return str(n)
    if n < 10_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.0f}M"


def fmt_rate(x: Any) -> str:
    if not x:
        return "0"
    if x < 10:
        return f"{x:.1f}"
    if x < 100_000:
        return f"{x:.0f}"
    return f"{x / 1000:.0f}k"


def fmt_age(secs: Any) -> str:
    if secs is None:
        return "-"
    if secs <= 0:
        return "0"
    if secs < 0.1:
        return f"{secs * 1000:.0f}ms"
    if secs < 10:
        return f"{secs:.1f}s"
    if secs < 60:
        return f"{secs:.0f}s"
    if secs < 3600:
        return f"{int(secs // 60)}m{int(secs % 60):02d}"
    if secs < 86400:
        return f"{int(secs // 3600)}h{int(secs % 3600 // 60):02d}"
    return f"{int(secs // 86400)}d{int(secs % 86400 // 3600):02d}"


def fmt_pct(frac: Any) -> str:
    if frac is None:
        return "-"
    return f"{frac * 100:.0f}%"


def fmt_text(v: Any) -> str:
    return "" if v is None else str(v)


@dataclass(frozen=True)
class Column:
    field: str            # the Row attribute and the headless field name
    title: str
    width: int            # minimum width on screen
    grow: int = 0         # share of spare width (names); 0: fixed
    limit: int = 0        # maximum width when growing (0: no limit)
    align: str = "right"
    key: str = ""         # the (capital) sort key; "" for unsortable
    numeric: bool = True  # numbers sort biggest first
    fmt: Callable[[Any], str] = fmt_count
    keep: int = 5         # on a narrow screen, lower values are dropped first


HOST = Column("host", "HOST", 7, grow=2, limit=30, align="left", key="H", numeric=False, fmt=fmt_text, keep=9)
PROGRAM = Column("program", "PROGRAM", 10, grow=3, limit=40, align="left", key="P", numeric=False, fmt=fmt_text, keep=9)
TARGET = Column("target", "DATABASE", 16, grow=6, limit=70, align="left", key="D", numeric=False, fmt=fmt_text, keep=9)
PID = Column("pid", "PID", 7, key="K", numeric=False, fmt=fmt_text, keep=9)
POOL = Column("name", "POOL", 10, grow=4, limit=60, align="left", key="Y", numeric=False, fmt=fmt_text, keep=9)
PROCS = Column("processes", "PROCS", 5, key="R", keep=6)
POOLS = Column("pools", "POOLS", 5, key="O", keep=5)
CONNS = Column("connections", "CONNS", 5, key="C", keep=9)
OUT = Column("checked_out", "OUT", 5, key="U", keep=9)
IDLE = Column("idle", "IDLE", 5, key="I", keep=6)
WAIT = Column("waiters", "WAIT", 4, key="W", keep=3)
CAP = Column("capacity", "CAP", 5, key="A", keep=4)
RATE = Column("rate", "CO/S", 5, key="S", fmt=fmt_rate, keep=6)
FULL = Column("fullest", "FULL", 4, key="F", fmt=fmt_pct, keep=7)
LONGEST = Column("longest", "HELD", 5, key="L", fmt=fmt_age, keep=8)
SEEN = Column("last_report_age", "SEEN", 5, key="E", fmt=fmt_age, keep=4)
# A host's SEEN is when its agent (or, for a peer's host, the peer) was last heard.
HEARD = Column("last_heard_age", "SEEN", 5, key="E", fmt=fmt_age, keep=4)
HISTORY = Column("history", "HISTORY", 7, grow=1, limit=60, align="left", numeric=False, fmt=fmt_text, keep=7)

COLUMNS: dict[str, tuple[Column, ...]] = {
    "program": (HOST, PROGRAM, PROCS, POOLS, CONNS, OUT, IDLE, RATE, FULL, LONGEST, HISTORY),
    "host": (HOST, PROCS, POOLS, CONNS, OUT, IDLE, RATE, FULL, LONGEST, HEARD, HISTORY),
    "database": (TARGET, PROCS, POOLS, CONNS, CAP, OUT, IDLE, WAIT, RATE, FULL, LONGEST, HISTORY),
    "process": (HOST, PID, PROGRAM, POOLS, CONNS, OUT, IDLE, RATE, FULL, LONGEST, SEEN, HISTORY),
    "pool": (HOST, PID, PROGRAM, POOL, CONNS, OUT, IDLE, CAP, RATE, FULL, LONGEST, HISTORY),
}

#: The column each view sorts by until told otherwise.
DEFAULT_SORT = "connections"

#: Fields of every row in the headless output, beyond the view's columns.
EXTRA_FIELDS = ("stale",)


def sortable(view: str) -> list[Column]:
    return [c for c in COLUMNS[view] if c.key]


#: Row attributes that the headless output names more explicitly.
OUTPUT_NAMES = {
    "rate": "checkouts_per_sec",
    "fullest": "fullest_pool",
    "longest": "longest_checkout",
    "name": "pool",
}
_FROM_OUTPUT = {v: k for k, v in OUTPUT_NAMES.items()}


def column_for(view: str, name: str) -> Column | None:
    """The column of ``view`` whose field, output name, title or sort key is ``name``."""
    name = _FROM_OUTPUT.get(name, name)
    low = name.lower()
    for c in COLUMNS[view]:
        if c.key and (c.field == name or c.title.lower() == low or c.key == name.upper()
                      and len(name) == 1):
            return c
    return None


def layout(columns: tuple[Column, ...], total: int) -> list[int]:
    """Widths for ``columns`` in ``total`` characters (one space between).

    Names grow by their share up to their limit, then the history takes
    what is left; when even minimum widths do not fit, the least important
    columns are dropped (width 0) so a row never wraps.
    """
    widths = [c.width for c in columns]
    gaps = len(columns) - 1
    while sum(widths) + gaps > total:
        shown = [i for i, w in enumerate(widths) if w]
        if len(shown) <= 1:
            return [min(total, w) for w in widths]
        # the least important column goes first; of equals, the rightmost
        i = min(shown, key=lambda i: (columns[i].keep, -i))
        widths[i] = 0
        gaps -= 1
    spare = total - sum(widths) - gaps
    growers = [i for i, c in enumerate(columns) if c.grow and widths[i]]
    while spare > 0 and growers:
        weight = sum(columns[i].grow for i in growers)
        given = 0
        for i in list(growers):
            c = columns[i]
            share = max(1, spare * c.grow // weight)
            room = (c.limit - widths[i]) if c.limit else share
            add = min(share, room, spare - given)
            if add <= 0:
                if room <= 0:
                    growers.remove(i)
                continue
            widths[i] += add
            given += add
        if given == 0:
            break
        spare -= given
    return widths
