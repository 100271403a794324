"""The header: the status line (agent, link, pause), the totals with their
maxima, and one line per database with its use of capacity."""
from __future__ import annotations

import time
from typing import Any

import urwid

from .columns import fmt_age, fmt_count, fmt_pct, fmt_rate
from .markup import Markup, fit
from .model import Row, Table
from .settings import Thresholds
from .source import LinkStatus


def totals_markup(table: Table) -> Markup:
    t, m = table.totals, table.maxima
    out: Markup = []
    for label, field, fmt in (("hosts", "hosts", fmt_count), ("procs", "processes", fmt_count),
                              ("pools", "pools", fmt_count), ("conns", "connections", fmt_count),
                              ("out", "checked_out", fmt_count), ("idle", "idle", fmt_count),
                              ("co/s", "rate", fmt_rate)):
        if out:
            out.append("  ")
        out += [("label", label + " "), ("value", fmt(getattr(t, field))),
                ("max", "↑" + fmt(m.get(field, 0)))]
    return out


def database_markup(db: Row, width: int, th: Thresholds) -> Markup:
    """``target  conns/capacity  use%  [bar]`` coloured by how full it is."""
    cap = db.capacity
    use = db.connections / cap if cap else None
    level = th.limit_level(use, db.waiters)
    figures = f"{fmt_count(db.connections)}/{fmt_count(cap) if cap is not None else '∞'}"
    pct = fmt_pct(use) if use is not None else ""
    bar_w = 10 if width >= 70 else 0
    name_w = max(8, width - len(figures) - 6 - (bar_w + 3 if bar_w else 0) - 5)
    out: Markup = [("label", "db "), ("value", fit(db.target or "", name_w)), " ",
                   (level or "value", figures.rjust(len(figures))), " ", (level or "label", pct.rjust(4))]
    if bar_w:
        filled = 0 if use is None else min(bar_w, int(round(use * bar_w)))
        out += [" ▕", (level or "bar", "█" * filled + "░" * (bar_w - filled)), "▏"]
    if db.waiters:
        out += [" ", ("crit", f"{db.waiters} waiting")]
    return out


class Header(urwid.WidgetWrap):
    """Status line, totals, and one line per database (as many as fit)."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self.status = urwid.Text("", wrap="clip")
        self.totals = urwid.Text("", wrap="clip")
        self.dbs = urwid.Text("", wrap="clip")
        self.max_dbs = 3
        self._table: Table | None = None
        self._width = 80
        super().__init__(urwid.Pile([urwid.AttrMap(self.status, "title"), self.totals, self.dbs]))

    def set_status(self, left: Markup, right: Markup) -> None:
        self._status = (left, right)
        self._draw_status()

    def _draw_status(self) -> None:
        left, right = getattr(self, "_status", ([], []))
        used = sum(len(t if isinstance(t, str) else t[1]) for t in left + right)
        pad = max(1, self._width - used)
        self.status.set_text(left + [("title", " " * pad)] + right if left or right else "")

    def set_table(self, table: Table) -> None:
        self._table = table
        self.totals.set_text(totals_markup(table))
        self._draw_dbs()

    def _draw_dbs(self) -> None:
        t = self._table
        if t is None:
            return
        lines: Markup = []
        dbs = t.databases
        shown = dbs[: self.max_dbs] if len(dbs) > self.max_dbs else dbs
        if len(dbs) > self.max_dbs:
            shown = dbs[: self.max_dbs - 1]
        for i, db in enumerate(shown):
            if i:
                lines.append("\n")
            lines += database_markup(db, self._width, self.thresholds)
        if len(shown) < len(dbs):
            if lines:
                lines.append("\n")
            lines.append(("label", f"   … {len(dbs) - len(shown)} more databases: press 3 for the database view"))
        self.dbs.set_text(lines or ("label", "no database pools reported yet"))

    def render(self, size: tuple[int], focus: bool = False) -> urwid.Canvas:
        if size[0] != self._width:
            self._width = size[0]
            self._draw_status()
            self._draw_dbs()
        return super().render(size, focus)


def status_markup(agent: dict[str, Any], link: LinkStatus, paused: bool, refresh: float,
                  socket_path: str) -> tuple[Markup, Markup]:
    """The status line's left (which agent) and right (the link: live,
    lost, connecting; and PAUSED) parts."""
    left: Markup = [("title", " connmon "), ("title dim", f"{agent.get('host', '')} ")]
    if agent:
        left.append(("title dim", f"agent {agent.get('pid')} up {fmt_age(agent.get('uptime'))} "))
    right: Markup = []
    if paused:
        right += [("paused", " PAUSED "), ("title", " ")]
    if link.connected:
        age = "" if link.last_state_at is None else f" {fmt_age(time.monotonic() - link.last_state_at)} ago"
        right += [("live", "● live"), ("title dim", f"{age} every {refresh:g}s ")]
    elif link.ever_connected or link.error:
        gone_for = fmt_age(time.monotonic() - link.since)
        right.append(("lost", f" ✖ agent lost {gone_for} ago, reconnecting "))
    else:
        right.append(("title dim", f"connecting to {socket_path}… "))
    return left, right
