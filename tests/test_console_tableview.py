"""The table on screen with many rows: row widgets are made only for the
rows urwid shows, scrolling shows the right ones, and the selection
follows its row through updates, re-sorts and pauses."""
from __future__ import annotations

from typing import Any

import pytest

urwid = pytest.importorskip("urwid")

from test_console_model import MYSQL, PG, T0, make_pool, make_process, make_state  # noqa: E402
from test_console_widgets import DOWN, Console  # noqa: E402

PAGE_DOWN, PAGE_UP, END, HOME = b"\x1b[6~", b"\x1b[5~", b"\x1b[4~", b"\x1b[1~"
N = 600


def many(at: float = T0, tick: int = 0) -> dict[str, Any]:
    """N processes on 6 hosts; process i holds (i + tick) % 5 connections."""
    procs = [make_process(f"web{i % 6}", 1000 + i, f"svc{i % 4}",
                          [make_pool("1", MYSQL if i % 3 else PG, out=(i + tick) % 5, idle=1,
                                     checkouts=10 * i + tick * (i % 7 + 1))])
             for i in range(N)]
    return make_state(procs, at)


def table_lines(c: Console) -> list[str]:
    """The table's lines: between the column titles and the 3-line footer."""
    lines = c.text()
    return [line for line in lines[c._colhead_index(lines) + 1:-3] if line.strip()]


def pids_on_screen(c: Console) -> list[int]:
    return [int(line.split()[1]) for line in table_lines(c)]


def test_only_rows_on_screen_are_made_and_scrolling_shows_the_right_ones() -> None:
    c = Console(80, 24)
    c.feed(many(T0))
    c.feed(many(T0 + 1, tick=1))
    c.type("4K")                       # process view, by pid (ascending)
    c.type(HOME)
    table = c.app.table_view.table
    assert table is not None and len(table.rows) == N
    by_pid = [r.pid for r in table.rows]
    assert by_pid == sorted(by_pid)
    first = pids_on_screen(c)
    assert first == by_pid[:len(first)] and len(first) >= 10
    c.type(PAGE_DOWN + PAGE_DOWN)
    shown = pids_on_screen(c)
    start = by_pid.index(shown[0])
    assert start > len(first) and shown == by_pid[start:start + len(shown)]
    assert c.app.table_view.selected().pid in shown
    c.type(END)
    assert pids_on_screen(c)[-1] == by_pid[-1] == c.app.table_view.selected().pid
    c.type(PAGE_UP)
    shown = pids_on_screen(c)
    start = by_pid.index(shown[0])
    assert shown == by_pid[start:start + len(shown)] and shown[-1] < by_pid[-1]
    # Widgets were made for the pages shown (five) and their edges, not for
    # every row; an update starts over.
    assert len(c.app.table_view.walker._cache) <= 6 * len(shown) < N
    c.feed(many(T0 + 2, tick=2))
    assert len(c.app.table_view.walker._cache) <= 2 * len(shown)


def test_rows_scrolled_to_after_an_update_show_the_new_figures() -> None:
    c = Console(80, 24)
    c.feed(many(T0))
    c.type("4K")
    c.type(END)
    c.feed(many(T0 + 1, tick=2))       # every process's figures change
    last = table_lines(c)[-1].split()
    row = c.app.table_view.table.rows[-1]
    assert int(last[1]) == row.pid == 1000 + N - 1
    assert int(last[5]) == row.checked_out == (N - 1 + 2) % 5


def test_selection_survives_a_re_sort_and_a_reverse() -> None:
    c = Console(80, 24)
    c.feed(many(T0))
    c.feed(many(T0 + 1, tick=1))
    c.type("4K")
    c.type(HOME + DOWN * 7)
    chosen = c.app.table_view.selected().pid
    assert chosen == 1007
    for keys in ("U", "r", "C", "H", "K"):
        c.type(keys)
        assert c.app.table_view.selected().pid == chosen, keys
        assert chosen in pids_on_screen(c), keys    # and it is on screen
    c.feed(many(T0 + 2, tick=3))
    assert c.app.table_view.selected().pid == chosen


def test_a_paused_table_scrolls_through_the_figures_it_was_paused_with() -> None:
    c = Console(80, 24)
    c.feed(many(T0))
    c.type("4K ")                      # process view by pid, paused
    paused_rows = list(c.app.table_view.table.rows)
    c.feed(many(T0 + 1, tick=3))
    c.feed(many(T0 + 2, tick=4))
    c.type(END)
    last = table_lines(c)[-1].split()
    assert int(last[5]) == paused_rows[-1].checked_out == (N - 1) % 5
    c.type(" ")                        # resume: the newest figures
    assert int(table_lines(c)[-1].split()[5]) == (N - 1 + 4) % 5
