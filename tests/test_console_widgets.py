"""The console's widgets and key handling, rendered to text at fixed sizes.

Keys go through urwid's own input path: raw terminal bytes are decoded by
urwid's escape-sequence parser and fed to ``MainLoop.process_input``, which
hands them to the focused widget and then to the console's key handler.
"""
from __future__ import annotations

import time
from typing import Any

import pytest

urwid = pytest.importorskip("urwid")

from urwid.display.escape import process_keyqueue  # noqa: E402

from connmon_agent.console.app import ConsoleApp  # noqa: E402
from connmon_agent.console.detail import detail_lines  # noqa: E402
from connmon_agent.console.model import Model  # noqa: E402
from connmon_agent.console.settings import Thresholds, ViewSpec  # noqa: E402
from connmon_agent.console.tableview import column_markup, row_markup  # noqa: E402
from test_console_model import MYSQL, T0, fleet, make_pool, make_process, make_state  # noqa: E402


class FixedScreen(urwid.BaseScreen):
    """A urwid screen of a fixed size that keeps the last canvas drawn."""

    def __init__(self, cols: int, rows: int) -> None:
        super().__init__()
        self.size = (cols, rows)
        self.canvas: Any = None

    def get_cols_rows(self) -> tuple[int, int]:
        return self.size

    def draw_screen(self, size: tuple[int, int], canvas: Any) -> None:
        self.canvas = canvas


class Console:
    """A ConsoleApp with a loop on a fixed screen; no feed thread."""

    def __init__(self, cols: int = 80, rows: int = 24, **kw: Any) -> None:
        self.app = ConsoleApp("/run/test/agent.sock", feed_factory=None, **kw)
        self.screen = FixedScreen(cols, rows)
        self.loop = self.app.make_loop(screen=self.screen)
        self.loop.screen_size = self.screen.size

    def feed(self, state: dict[str, Any]) -> None:
        self.app.apply_state(state)

    def type(self, raw: bytes | str) -> None:
        """Send raw terminal input, decoded by urwid as a terminal's would be."""
        codes = list(raw.encode() if isinstance(raw, str) else raw)
        keys: list[Any] = []
        while codes:
            got, codes = process_keyqueue(codes, False)
            keys += got
        self.loop.process_input(keys)

    def text(self, size: tuple[int, int] | None = None) -> list[str]:
        size = size or self.screen.size
        self.loop.screen_size = size
        canvas = self.loop.widget.render(size, focus=True)
        return [line.decode("utf-8").rstrip() for line in canvas.text]

    def screen_text(self) -> str:
        return "\n".join(self.text())

    def colhead(self) -> str:
        lines = self.text()
        return lines[self._colhead_index(lines)]

    def rows(self) -> list[str]:
        """The table's lines on screen (below the column titles)."""
        lines = self.text()
        out = []
        for line in lines[self._colhead_index(lines) + 1:]:
            if not line.strip():
                break
            out.append(line)
        return out

    @staticmethod
    def _colhead_index(lines: list[str]) -> int:
        for i, line in enumerate(lines):
            if line.lstrip("▲▼").startswith(("HOST", "DATABASE")):
                return i
        raise AssertionError("no column titles on screen:\n" + "\n".join(lines))


UP, DOWN, ENTER, ESC, TAB = b"\x1b[A", b"\x1b[B", b"\r", b"\x1b", b"\t"


def two_states(c: Console) -> None:
    c.feed(fleet(T0))
    c.feed(fleet(T0 + 1, scale=2))


def test_program_view_at_80x24_renders_exactly() -> None:
    c = Console(80, 24)
    two_states(c)
    lines = c.text()
    assert len(lines) == 24
    assert lines[:7] == [
        " connmon web1 agent 4242 up 12s             connecting to /run/test/agent.sock…",
        "hosts 2↑2  procs 4↑4  pools 5↑5  conns 16↑16  out 8↑8  idle 8↑8  co/s 167↑167",
        "db mysql+pymysql://nova@db:3306/nova                   11/60  18% ▕██░░░░░░░░▏",
        "db postgresql+psycopg2://app@pg:5432/app                 5/5 100% ▕██████████▏",
        "HOST       PROGRAM       PROCS POOLS▼CONNS   OUT  IDLE  CO/S FULL  HELD HISTORY",
        "web1       nova-api          2     2     9     2     7   150  13%   12s        █",
        "web1       worker            1     2     6     6     0    17 100%   40s        █",
    ]
    assert lines[7] == "web2       nova-api          1     1     1     0     1     0   0%     0"
    assert all(not line for line in lines[8:21])
    assert lines[21] == "program view"
    assert lines[22].startswith("sort: Host Program pRocs pOols Conns oUt Idle co/S Full heLd")
    assert lines[23].startswith("q quit ? help / filter ! invert i idle g group Tab view")


def test_colours_mean_long_holds_full_pools_and_stale_rows() -> None:
    m = Model(Thresholds(hold_warn=5, hold_crit=30, limit_warn=0.8, stale_after=5))
    m.ingest(fleet())
    t = m.table(ViewSpec(view="process", sort="pid"))
    widths = [c.width for c in t.columns]

    def attrs(row: Any) -> dict[str, Any]:
        """The attribute of each column's text, from the row's markup."""
        per_char = [attr for attr, text in row_markup(row, t.columns, widths, m.thresholds, [])
                    for _ in text]
        out, pos = {}, 0
        for col, w in zip(t.columns, widths):
            cell = per_char[pos:pos + w]
            out[col.field] = cell[-1] if col.align == "right" else cell[0]
            pos += w + 1
        return out

    a101, a102, a103, a201 = (attrs(r) for r in t.rows)
    assert a101["longest"] == "warn"          # 12 s > hold_warn
    assert a103["longest"] == "crit"          # 40 s > hold_crit
    assert a103["fullest"] == "crit"          # the PostgreSQL pool is at its limit
    assert a102["longest"] is None and a102["fullest"] is None
    assert set(a201.values()) == {"stale"}    # silent for 8 s: every cell dim
    assert a101["host"] is None and a101["history"] == "spark"


def test_sorted_column_is_marked_and_reverse_flips_the_mark() -> None:
    m = Model()
    m.ingest(fleet())
    t = m.table(ViewSpec(view="host", sort="host"))
    widths = [c.width for c in t.columns]
    text = "".join(seg[1] for seg in column_markup(t.columns, widths, t.sort, t.reverse))
    assert text.startswith("HOST▲")
    t = m.table(ViewSpec(view="host", sort="host", reverse=True))
    text = "".join(seg[1] for seg in column_markup(t.columns, widths, t.sort, t.reverse))
    assert text.startswith("HOST▼")


def test_sort_keys_filter_and_views_through_the_input_path() -> None:
    c = Console(100, 24)
    two_states(c)
    c.type("4")                                # process view
    assert c.colhead().split()[:3] == ["HOST", "PID", "PROGRAM"]
    c.type("K")                                # sort by pid
    assert [line.split()[1] for line in c.rows()] == ["101", "102", "103", "201"]
    assert "▲PID" in c.colhead()
    c.type("K")                                # again: reversed
    assert [line.split()[1] for line in c.rows()] == ["201", "103", "102", "101"]
    assert "▼PID" in c.colhead()
    c.type("/")
    c.type("nova")                             # live as it is typed
    assert [line.split()[1] for line in c.rows()] == ["201", "102", "101"]
    c.type(ENTER)
    c.type("!")                                # inverted
    assert "filter /!nova/ (inverted)" in c.screen_text()
    assert [line.split()[1] for line in c.rows()] == ["103"]
    c.type(ESC)                                # Esc clears the filter
    assert "filter /" not in c.screen_text() and len(c.rows()) == 4
    c.type(TAB)                                # the next view: pools
    assert "POOL" in c.colhead() and len(c.rows()) == 5


def test_a_bad_regex_is_shown_and_keeps_the_last_good_filter() -> None:
    c = Console(80, 24)
    two_states(c)
    c.type("/worker(")
    assert "bad filter" in c.screen_text()
    assert [line.split()[1] for line in c.rows()] == ["worker"]
    c.type(ESC)                                # cancel: back to no filter
    assert len(c.rows()) == 3


def test_selection_survives_updates_that_reorder_rows() -> None:
    c = Console(80, 24)
    two_states(c)
    c.type(DOWN)                               # worker (second by connections)
    assert c.app.table_view.selected().program == "worker"
    s = fleet(T0 + 2, scale=2)
    # worker's PostgreSQL pool grows: it becomes the first row
    s["processes"][2]["pools"][1]["gauges"].update(checked_in=20, connections=25)
    c.feed(s)
    assert c.rows()[0].split()[1] == "worker"
    assert c.app.table_view.selected().program == "worker"


def test_drill_down_to_a_pools_checkouts_and_back() -> None:
    c = Console(80, 30)
    two_states(c)
    c.type(DOWN + ENTER)                       # worker: two pools, a pool list
    assert "pools of host=web1 program=worker" in c.screen_text()
    assert [line.split()[1] for line in c.rows()] == ["103", "103"]
    c.type(ENTER)                              # the first pool (PostgreSQL, 5 connections)
    screen = c.screen_text()
    assert "Pool Engine(postgresql+psycopg2://app@pg:5432/app)" in screen
    assert "Checkouts (5)" in screen
    assert "5.0s MainThread" in screen and "app.py:12 in handler" in screen
    assert "Hold times of finished checkouts (20" in screen
    c.type(ESC)
    assert "pools of host=web1 program=worker" in c.screen_text()
    c.type(ESC)
    assert "program view" in c.screen_text() and "pools of" not in c.screen_text()
    assert c.app.table_view.selected().program == "worker"


def test_drill_down_on_a_single_pool_goes_straight_to_its_detail() -> None:
    c = Console(80, 30)
    two_states(c)
    c.type("4K")                               # process view by pid: the selection
    assert c.app.table_view.selected().pid == 103   # stays on its row (103)
    c.type(b"\x1b[1~" + DOWN)                 # Home, Down: 102
    c.type(ENTER)
    screen = c.screen_text()
    assert "Process web1 pid 102 nova-api" in screen
    assert "none: every connection is idle" in screen
    c.type(ESC)
    assert c.app.table_view.selected().pid == 102


def test_detail_follows_updates_and_says_when_the_pool_is_gone() -> None:
    c = Console(80, 30)
    two_states(c)
    c.type("5")
    c.type("Y")                                 # pool view by name
    c.type(ENTER)
    key = c.app.detail_key
    assert key is not None
    s = fleet(T0 + 2)
    s["processes"] = [p for p in s["processes"] if p["pid"] != key[1]]
    c.feed(s)
    assert "no longer reported" in c.screen_text()


def test_group_hide_idle_pause_and_help() -> None:
    c = Console(100, 24)
    two_states(c)
    c.type("g")
    rows = c.rows()
    assert rows[0].startswith("▾ web1") and rows[3].startswith("▾ web2") and len(rows) == 5
    c.type("i")                                 # idle hidden: web2 has nothing out
    assert "idle hidden" in c.screen_text() and "web2" not in "".join(c.rows())
    c.type(" ")
    assert "PAUSED" in c.text()[0]
    before = c.rows()
    s = fleet(T0 + 2, scale=3)
    s["processes"][0]["pools"][0]["gauges"].update(checked_out=4, connections=7)
    c.feed(s)
    assert c.rows() == before                  # paused: nothing moves
    c.type(" ")
    assert c.rows() != before
    c.type("?")
    assert "help: Esc or ? closes" in c.screen_text()
    c.type(ESC)
    assert "help: Esc" not in c.screen_text()


def test_q_quits_the_loop() -> None:
    c = Console()
    two_states(c)
    with pytest.raises(urwid.ExitMainLoop):
        c.type("q")


@pytest.mark.parametrize("size", [(80, 24), (40, 12), (200, 60), (20, 5)])
def test_every_view_renders_at_any_size_without_wrapping(size: tuple[int, int]) -> None:
    c = Console(*size)
    two_states(c)
    for key in "12345":
        c.type(key)
        lines = c.text(size)
        assert len(lines) == size[1]
        assert all(len(line) <= size[0] for line in lines)
    c.type("5" + "\r")
    assert len(c.text(size)) == size[1]


def test_resize_lays_the_columns_out_again() -> None:
    c = Console(80, 24)
    two_states(c)
    c.type("4")
    narrow = c.text((80, 24))[4]
    wide = c.text((160, 40))[4]
    assert "SEEN" not in narrow and "SEEN" in wide and len(wide) > len(narrow)
    assert c.text((80, 24))[4] == narrow


def test_detail_lines_show_configuration_counters_and_histogram() -> None:
    m = Model()
    m.ingest(make_state([make_process("web1", 7, "api", [make_pool(
        "1", MYSQL, out=1, idle=1, ages=(31.0,), holder="celery-3", kind="task",
        where="tasks.py:40 in charge")])]))
    rec = m.pool(("web1", 7, T0 - 1000 + 7, "1"))
    text = "\n".join("".join(s if isinstance(s, str) else s[1] for s in line)
                     for line in detail_lines(rec, Thresholds(), [1, 2, None, 1], 100))
    assert "class QueuePool  size 5  max_overflow 10" in text
    assert "capacity 15" in text
    assert "checkouts 0  rate 0/s" in text
    assert "31s celery-3" in text and "task" in text and "tasks.py:40 in charge" in text
    assert "≤ 1ms" in text and "> 10s" in text
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(T0 - 1000 + 7))
    assert f"started {started}" in text
