"""The drill-down screen of one pool: configuration, figures, every current
checkout with its age, holder and where it was taken, and the hold-time
histogram. Lines are built from the model's record; no sockets here."""
from __future__ import annotations

import time
from typing import Any

import urwid

from ..protocol import COUNTERS, GAUGES
from .columns import fmt_age, fmt_count, fmt_pct, fmt_rate
from .records import PoolRecord
from .settings import Thresholds
from .sparkline import sparkline
from .markup import Markup, fit

GAUGE_LABELS = {"checked_out": "out", "checked_in": "idle", "connections": "conns"}


def _fmt_bound(b: float) -> str:
    if b < 1:
        return f"{b * 1000:g}ms"
    return f"{b:g}s"


def _pairs(pairs: list[tuple[str, Any]], level: dict[str, str | None] | None = None) -> Markup:
    out: Markup = []
    for k, v in pairs:
        if out:
            out.append("  ")
        out += [("label", f"{k} "), ((level or {}).get(k) or "value", str(v))]
    return out


def detail_lines(rec: PoolRecord | None, th: Thresholds, history: list[float | None],
                 width: int, gone: bool = False) -> list[Markup]:
    """Every line of the pool's detail screen, as urwid markup."""
    if rec is None or rec.pool is None:
        return [[("warn", "This pool is gone: its process ended or disposed of it. Esc goes back.")]]
    pool, proc = rec.pool, rec.proc
    lines: list[Markup] = []
    if gone:
        lines.append([("warn", "This pool is no longer reported; showing its last state. Esc goes back.")])
    lines.append([("section", "Pool "), ("value", rec.name), ("label", f"  id {pool.get('id')}")])
    started = proc.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if started else "?"
    seen: Markup = [("label", "  last report "),
                    ("warn" if rec.stale else "value", fmt_age(rec.last_report_age) + " ago")]
    if rec.stale:
        seen.append(("warn", " (stale)"))
    lines.append([("section", "Process "), ("value", f"{rec.host} pid {rec.pid} {rec.program}"),
                  ("label", f"  started {when}")] + seen)
    lines.append([("section", "Database "), ("value", rec.target)])
    lines.append([])

    config = dict(pool.get("config") or {})
    cfg = [(k, config.pop(k)) for k in ("class", "size", "max_overflow", "timeout", "recycle", "pre_ping")
           if k in config] + sorted(config.items())
    cfg.append(("capacity", "unbounded" if rec.capacity is None else rec.capacity))
    lines.append([("section", "Configuration  ")] + _pairs(cfg))

    g = pool.get("gauges") or {}
    gauges = [(GAUGE_LABELS.get(k, k), g.get(k, 0)) for k in GAUGES]
    gauges.append(("full", fmt_pct(rec.fullest)))
    level = {"full": th.limit_level(rec.fullest, rec.waiters), "waiters": "crit" if rec.waiters else None}
    lines.append([("section", "Now            ")] + _pairs(gauges, level))

    c = pool.get("counters") or {}
    counters = [(k, c.get(k, 0)) for k in COUNTERS]
    counters.insert(1, ("rate", f"{fmt_rate(rec.rate)}/s"))
    lines.append([("section", "Counters       ")] + _pairs(counters, {"timeouts": "crit" if c.get("timeouts") else None}))
    wait = pool.get("wait")
    if wait:
        lines.append([("section", "Waited         ")] + _pairs(
            [("total", f"{wait.get('sum', 0):.3f}s"), ("longest", f"{wait.get('max', 0):.3f}s")]))
    spark_w = max(10, min(60, width - 30))
    lines.append([("section", "Checked out    "), ("spark", sparkline(history, spark_w)),
                  ("label", f"  peak {fmt_count(max((v for v in history if v), default=0))}")])
    lines.append([])

    cos = sorted(pool.get("checkouts") or (), key=lambda co: -co.get("age", 0))
    total = pool.get("checkouts_total", len(cos))
    head = f"Checkouts ({len(cos)}" + (f" of {total})" if total > len(cos) else ")")
    lines.append([("section", head)])
    if cos:
        holder_w = max(12, min(40, (width - 25) // 3))
        where_w = max(10, width - holder_w - 20)
        lines.append([("colhead", f"{'AGE':>6} {fit('HOLDER', holder_w)} {'KIND':<8} {fit('WHERE', where_w)}")])
        for co in cos:
            age = co.get("age", 0.0)
            holder = co.get("request") or co.get("task") or co.get("holder") or "?"
            if co.get("holder") and co.get("holder") != holder:
                holder = f"{holder} ({co['holder']})"
            lines.append([(th.hold_level(age) or "value", f"{fmt_age(age):>6}"), " ",
                          fit(holder, holder_w), " ", ("label", fit(co.get("kind") or "", 8)), " ",
                          fit(co.get("where") or "-", where_w)])
    else:
        lines.append([("label", "  none: every connection is idle in the pool")])
    lines.append([])

    hold = pool.get("hold")
    if hold and hold.get("count"):
        n = hold["count"]
        lines.append([("section", f"Hold times of finished checkouts ({n}, mean "
                                  f"{fmt_age(hold.get('sum', 0) / n) if n else '-'})")])
        bounds, counts = hold["bounds"], hold["counts"]
        top = max(counts) or 1
        bar_w = max(10, min(50, width - 25))
        for i, count in enumerate(counts):
            label = f"≤ {_fmt_bound(bounds[i])}" if i < len(bounds) else f"> {_fmt_bound(bounds[-1])}"
            bar = "█" * (int(round(count / top * bar_w)) if count else 0)
            lines.append([("label", f"{label:>10} "), ("bar", fit(bar, bar_w)), ("value", f" {count}")])
    else:
        lines.append([("section", "Hold times "), ("label", "no finished checkouts yet")])
    return lines


class DetailView(urwid.WidgetWrap):
    """A scrolling list of the detail lines; keeps its scroll position when
    the lines are rebuilt on each update."""

    def __init__(self) -> None:
        self.walker = urwid.SimpleFocusListWalker([])
        self.listbox = urwid.ListBox(self.walker)
        self.pool_key: tuple | None = None
        self._lines: list[Markup] = []
        self._width = 80
        super().__init__(self.listbox)

    def set_lines(self, lines: list[Markup]) -> None:
        self._lines = lines
        focus = self.walker.focus if self.walker else 0
        self.walker[:] = [urwid.Text(m or "") for m in lines]
        if self.walker:
            self.walker.set_focus(min(focus or 0, len(self.walker) - 1))

    @property
    def width(self) -> int:
        return self._width

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:
        self._width = size[0]
        return super().render(size, focus)

    def text(self) -> str:
        return "\n".join("".join(t if isinstance(t, str) else t[1] for t in m) for m in self._lines)
