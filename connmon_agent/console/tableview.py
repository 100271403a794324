"""The table on screen: a column header over a list of rows.

Row widgets are made lazily, only for the rows urwid asks for (those on
screen and their neighbours), whatever the number of rows in the table;
the selection follows its row by key across updates and re-sorts.
Widgets draw tables from the model; they never read sockets and never
decide what a row holds.
"""
from __future__ import annotations

from typing import Callable, Iterator

import urwid

from .columns import Column, layout
from .markup import FOCUS_MAP, Markup, fit
from .model import Row, Table
from .settings import Thresholds
from .sparkline import sparkline


def cell_level(col: Column, row: Row, th: Thresholds) -> str | None:
    """The colour a value earns: a long hold, a pool at its limit, waiters."""
    f = col.field
    if f == "longest":
        return th.hold_level(row.longest)
    if f == "fullest":
        return th.limit_level(row.fullest, row.waiters)
    if f == "waiters" and row.waiters:
        return "crit"
    if f in ("last_report_age", "last_heard_age") and row.stale:
        return "warn"
    return None


def row_markup(row: Row, columns: tuple[Column, ...], widths: list[int], th: Thresholds,
               history: list[float | None]) -> Markup:
    """One table line as urwid markup, exactly ``sum(widths) + gaps`` wide."""
    base = "stale" if row.stale else ("group" if row.kind == "group" else None)
    out: Markup = []
    cells = [(c, w) for c, w in zip(columns, widths) if w]
    i = 0
    if row.kind == "group":
        # The group's name spans the leading name columns.
        span = -1
        while i < len(cells) and not cells[i][0].numeric and cells[i][0].field != "history":
            span += cells[i][1] + 1
            i += 1
        if span < 0:
            span, i = cells[0][1], 1
        label = f"▾ {row.group if row.group not in (None, '') else '(none)'}"
        out.append((base, fit(label, span)))
    for col, w in cells[i:]:
        if out:
            out.append((base, " "))
        if col.field == "history":
            attr = "stale" if row.stale else "spark"
            out.append((attr, sparkline(history, w)))
            continue
        text = fit(col.fmt(getattr(row, col.field, None)), w, col.align)
        level = None if row.stale else cell_level(col, row, th)
        out.append((level or base, text))
    return _merge(out)


def _merge(markup: Markup) -> Markup:
    """Join neighbouring segments of one attribute: fewer segments make
    urwid's text layout several times faster."""
    out: Markup = []
    for attr, text in markup:
        if out and out[-1][0] == attr:
            out[-1] = (attr, out[-1][1] + text)
        else:
            out.append((attr, text))
    return out


def column_markup(columns: tuple[Column, ...], widths: list[int], sort: Column,
                  descending: bool) -> Markup:
    """Column titles; the sorted one highlighted, its direction marked in
    the gap before it (so the title is never cut)."""
    out: Markup = []
    for col, w in zip(columns, widths):
        if not w:
            continue
        mark = "▼" if descending else "▲"
        if col is sort:
            gap = " " if out else ""
            if len(col.title) < w:
                text = col.title + mark if col.align == "left" else mark + col.title
                out.append(("sorted", gap + fit(text, w, col.align)))
            elif out:
                out.append(("sorted", mark + fit(col.title, w, col.align)))
            else:
                out.append(("sorted", fit(col.title + mark, w, col.align)))
            continue
        if out:
            out.append(("colhead", " "))
        out.append(("colhead", fit(col.title, w, col.align)))
    return out


class RowText(urwid.Text):
    """A table line the list box can focus."""

    _selectable = True

    def keypress(self, size: tuple[int], key: str) -> str:
        return key


class TableWalker(urwid.ListWalker):
    """Lazily made row widgets over a table's rows: only rows on screen are
    ever formatted, whatever the number of rows."""

    def __init__(self, history_of: Callable[[Row], list[float | None]], thresholds: Thresholds) -> None:
        self.history_of = history_of
        self.thresholds = thresholds
        self.rows: list[Row] = []
        self.columns: tuple[Column, ...] = ()
        self.widths: list[int] = []
        self.focus = 0
        self._cache: dict[int, urwid.Widget] = {}

    def set_rows(self, rows: list[Row], columns: tuple[Column, ...], widths: list[int], focus: int) -> None:
        self.rows = rows
        self.columns = columns
        self.widths = widths
        self.focus = max(0, min(focus, len(rows) - 1))
        self._cache = {}
        self._modified()

    def __len__(self) -> int:
        return len(self.rows)

    def __length_hint__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> urwid.Widget:
        if not 0 <= position < len(self.rows):
            raise IndexError(position)
        w = self._cache.get(position)
        if w is None:
            row = self.rows[position]
            markup = row_markup(row, self.columns, self.widths, self.thresholds, self.history_of(row))
            w = self._cache[position] = urwid.AttrMap(RowText(markup, wrap="clip"), None, FOCUS_MAP)
        return w

    def next_position(self, position: int) -> int:
        if position + 1 >= len(self.rows):
            raise IndexError(position)
        return position + 1

    def prev_position(self, position: int) -> int:
        if position <= 0:
            raise IndexError(position)
        return position - 1

    def set_focus(self, position: int) -> None:
        self.focus = position
        self._modified()

    def positions(self, reverse: bool = False) -> Iterator[int]:
        r = range(len(self.rows))
        return iter(reversed(r) if reverse else r)


class TableView(urwid.WidgetWrap):
    """Column header over a scrolling list of rows. Keeps the selection on
    the same row (by key) across updates, and lays columns out again when
    the terminal is resized."""

    def __init__(self, history_of: Callable[[Row], list[float | None]], thresholds: Thresholds) -> None:
        self.walker = TableWalker(history_of, thresholds)
        self.listbox = urwid.ListBox(self.walker)
        self.colhead = urwid.Text("", wrap="clip")
        self.empty = urwid.Text(("stale", "  (nothing to show)"), wrap="clip")
        self.table: Table | None = None
        self._cols = 0
        self._pile = urwid.Pile([("pack", urwid.AttrMap(self.colhead, "colhead")), self.listbox])
        super().__init__(self._pile)

    def set_table(self, table: Table, keep: tuple | None = None, index: int | None = None) -> None:
        """Show ``table``, focusing the row with key ``keep`` if it is still
        there, else the row at ``index`` (clamped)."""
        self.table = table
        pos = table.index_of(keep)
        if pos is None:
            pos = index if index is not None else self.walker.focus
        self._apply(pos)

    def _apply(self, pos: int) -> None:
        t = self.table
        if t is None:
            return
        widths = layout(t.columns, self._cols) if self._cols else [c.width for c in t.columns]
        self.colhead.set_text(column_markup(t.columns, widths, t.sort, t.reverse))
        self.walker.set_rows(t.rows, t.columns, widths, pos)
        if t.rows:
            self.listbox.set_focus(self.walker.focus)
        self._pile.contents[1] = (self.listbox if t.rows else urwid.Filler(self.empty, "top"),
                                  self._pile.options())

    def render(self, size: tuple[int, int], focus: bool = False) -> urwid.Canvas:
        if size[0] != self._cols:
            self._cols = size[0]
            self._apply(self.walker.focus)
        return super().render(size, focus)

    def selected(self) -> Row | None:
        rows = self.walker.rows
        if not rows:
            return None
        return rows[min(self.walker.focus, len(rows) - 1)]

    def move(self, where: str) -> None:
        if not self.walker.rows:
            return
        pos = 0 if where == "home" else len(self.walker.rows) - 1
        self.walker.set_focus(pos)
        self.listbox.set_focus(pos, "below" if where == "home" else "above")
