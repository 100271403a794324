"""The console application: joins the feed (source), the model and the
widgets in one urwid loop with one key handler.

Updates arrive through a pipe the loop watches (the feed thread writes a
byte when a state is ready), so the screen never waits on the socket; a
one-second alarm keeps the "last update" and link status current. Nothing
is ever printed over the screen: logs go to a file, and an error inside a
callback is logged and shown as a one-line message.
"""
from __future__ import annotations

import gc
import logging
import os
import time
from typing import Any, Callable

import urwid

from ..errors import ConfigError
from .columns import sortable
from .detail import DetailView, detail_lines
from .filters import RowFilter
from .footer import DETAIL_KEYS, KEYS, Footer, breadcrumb, info_markup, keys_markup, sort_keys_markup
from .header import Header, status_markup
from .helptext import help_overlay
from .history import History
from .markup import PALETTE
from .model import Model, scope_of
from .prompt import FilterPrompt
from .records import PoolRecord
from .settings import GROUPS, VIEWS, Thresholds, ViewSpec
from .source import LinkStatus, StateFeed
from .tableview import TableView

log = logging.getLogger("connmon.console")

REFRESH_STEPS = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class ConsoleApp:
    """The screen's state machine. ``handle_key`` is the one key handler;
    ``apply_state`` takes one state from the agent. Both are safe to drive
    directly (tests do) without a running loop."""

    def __init__(self, socket_path: Any, refresh: float = 1.0, thresholds: Thresholds | None = None,
                 spec: ViewSpec | None = None, history: float = 300.0,
                 feed_factory: Callable[..., StateFeed] | None = StateFeed,
                 log_file: str | None = None) -> None:
        self.socket_path = socket_path
        self.refresh = refresh
        self.thresholds = thresholds or Thresholds()
        self.model = Model(self.thresholds, History(window=history, slots=60))
        self.spec = spec or ViewSpec()
        self.log_file = log_file
        self.stack: list[tuple[ViewSpec, tuple | None]] = []
        self.detail_key: tuple | None = None
        self._detail_last: PoolRecord | None = None
        self.paused = False
        self.status = LinkStatus()
        self.message: tuple[str, str] | None = None
        self._message_until = 0.0
        self.prompt: FilterPrompt | None = None
        self.help_open = False
        self.last_render_ms = 0.0
        self.last_release_ms = 0.0
        self._feed_factory = feed_factory
        self.feed: StateFeed | None = None
        self.loop: urwid.MainLoop | None = None

        th = self.thresholds
        self.table_view = TableView(self.model.history_of, th)
        self.detail = DetailView()
        self.header = Header(th)
        self.footer = Footer()
        self.frame = urwid.Frame(self.table_view, header=self.header, footer=self.footer)
        self.help = help_overlay(self.frame)
        self.top = urwid.WidgetPlaceholder(self.frame)
        self._redraw_chrome()

    # -- the loop ------------------------------------------------------------

    def make_loop(self, screen: Any = None) -> urwid.MainLoop:
        self.loop = urwid.MainLoop(self.top, PALETTE, screen=screen, unhandled_input=self._on_input,
                                   handle_mouse=False)
        return self.loop

    def run(self) -> int:
        """Run until q (0) or Ctrl-C; the terminal is restored either way."""
        loop = self.make_loop()
        pipe = loop.watch_pipe(self._on_pipe)
        os.set_blocking(pipe, False)

        def notify() -> None:
            try:
                os.write(pipe, b"x")
            except BlockingIOError:
                pass   # the loop has wake-ups pending already

        if self._feed_factory is not None:
            self.feed = self._feed_factory(self.socket_path, self.refresh, notify)
            self.feed.start()
        loop.set_alarm_in(1.0, self._tick)
        try:
            loop.run()
        finally:
            if self.feed is not None:
                # Closing the link wakes the feed thread at once (AgentLink.close
                # shuts the socket down), so this join is short.
                self.feed.stop()
            loop.remove_watch_pipe(pipe)
        return 0

    def _on_pipe(self, data: bytes) -> bool:
        self._guard(self._drain)
        return True

    def _drain(self) -> None:
        if self.feed is None:
            return
        state, status = self.feed.take()
        if status != self.status:
            self.status = status
        if state is not None:
            self.apply_state(state)
        else:
            self._redraw_chrome()

    def _tick(self, loop: urwid.MainLoop, data: Any = None) -> None:
        self._guard(self._redraw_chrome)
        loop.set_alarm_in(1.0, self._tick)

    def _on_input(self, key: Any) -> None:
        if isinstance(key, str):
            self._guard(lambda: self.handle_key(key))

    def _guard(self, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except urwid.ExitMainLoop:
            raise
        except Exception:
            log.exception("console error")
            where = f": see {self.log_file}" if self.log_file else ""
            self.flash(f"internal error{where}", "error")

    # -- data ----------------------------------------------------------------

    def apply_state(self, state: dict[str, Any]) -> None:
        """Take one state; redraw (and draw) unless paused.

        The refresh runs with the cyclic garbage collector off: it makes
        many small objects and a collection in the middle would add a third
        to its time. The previous state (and the records and table made
        from it) is let go only once the screen is drawn: freeing ten
        thousand processes' objects takes about as long as reading them,
        and the screen need not wait for it. ``last_render_ms`` is the time
        to the screen, ``last_release_ms`` the freeing after it."""
        started = time.perf_counter()
        enabled = gc.isenabled()
        gc.disable()
        retired = (self.model.state, self.model.records.records, self.table_view.table)
        try:
            self.model.ingest(state)
            if not self.paused:
                self._redraw()
                loop = self.loop
                if loop is not None and getattr(loop.screen, "started", False):
                    loop.draw_screen()
            drawn = time.perf_counter()
            del retired
        finally:
            if enabled:
                gc.enable()
        done = time.perf_counter()
        self.last_render_ms = (drawn - started) * 1000
        self.last_release_ms = (done - drawn) * 1000
        log.debug("refresh took %.1f ms (+%.1f ms freeing the previous state)",
                  self.last_render_ms, self.last_release_ms)

    def _redraw(self) -> None:
        if self.loop is not None:
            try:
                rows = self.loop.screen.get_cols_rows()[1]
                self.header.max_dbs = max(1, min(8, rows // 8))
            except Exception:  # a screen without a size (tests)
                pass
        if self.detail_key is not None:
            self._draw_detail()
        else:
            sel = self.table_view.selected()
            table = self.model.table(self.spec)
            self.table_view.set_table(table, keep=sel.key if sel else None)
            self.header.set_table(table)
        self._redraw_chrome()

    def _draw_detail(self) -> None:
        assert self.detail_key is not None
        rec = self.model.pool(self.detail_key)
        gone = rec is None
        if rec is not None:
            self._detail_last = rec
        rec = rec or self._detail_last
        hist = self.model.history.values(("pool", self.detail_key))
        self.detail.set_lines(detail_lines(rec, self.thresholds, hist, self.detail.width, gone=gone))
        table = self.model.table(self.spec)
        self.header.set_table(table)

    # -- chrome: status line and footer --------------------------------------

    def _redraw_chrome(self) -> None:
        agent = (self.model.state or {}).get("agent") or {}
        left, right = status_markup(agent, self.status, self.paused, self.refresh, self.socket_path)
        self.header.set_status(left, right)
        if self.prompt is not None:
            return
        message = self.message if self.message and time.monotonic() < self._message_until else None
        info = info_markup(self.breadcrumb(), self.status, self.spec, message)
        if self.detail_key is not None:
            self.footer.set(info, keys_markup(DETAIL_KEYS), None)
        else:
            table = self.table_view.table
            self.footer.set(info, keys_markup(KEYS),
                            sort_keys_markup(self.spec.view, table.sort if table else None))

    def breadcrumb(self) -> str:
        levels = [spec for spec, _ in self.stack]
        if self.detail_key is None:
            levels.append(self.spec)
        return breadcrumb(levels, self.detail_key)

    def flash(self, text: str, attr: str = "msg", secs: float = 4.0) -> None:
        self.message = (attr, f" {text} ")
        self._message_until = time.monotonic() + secs
        self._redraw_chrome()

    # -- keys ----------------------------------------------------------------

    def handle_key(self, key: str) -> None:
        """The one key handler (keys the focused widget did not use)."""
        if self.prompt is not None:
            return self._filter_key(key)
        if self.help_open:
            if key in ("esc", "?", "q", "Q", "enter", "f1"):
                self.help_open = False
                self.top.original_widget = self.frame
            return
        if key in ("q", "Q"):
            raise urwid.ExitMainLoop()
        if key in ("?", "f1", "h"):
            self.help_open = True
            self.top.original_widget = self.help
            return
        if key == " ":
            self.paused = not self.paused
            if not self.paused and self.model.state is not None:
                self._redraw()
            return self._redraw_chrome()
        if key in ("+", "-", "="):
            return self._step_refresh(1 if key in ("+", "=") else -1)
        if key == "esc":
            return self._back()
        if self.detail_key is not None:
            return
        table_keys: dict[str, Callable[[], None]] = {
            "enter": self._drill,
            "/": self._open_filter,
            "!": lambda: self._set_spec(filter=self.spec.filter.inverse()),
            "i": lambda: self._set_spec(hide_idle=not self.spec.hide_idle),
            "g": lambda: self._set_spec(group=GROUPS[(GROUPS.index(self.spec.group) + 1) % len(GROUPS)]),
            "r": lambda: self._set_spec(reverse=not self.spec.reverse),
            "<": lambda: self._step_sort(-1),
            ">": lambda: self._step_sort(1),
            "tab": lambda: self._switch_view(1),
            "shift tab": lambda: self._switch_view(-1),
            "home": lambda: self.table_view.move("home"),
            "end": lambda: self.table_view.move("end"),
        }
        if key in table_keys:
            return table_keys[key]()
        if key in ("1", "2", "3", "4", "5"):
            return self._switch_view(to=VIEWS[int(key) - 1])
        if len(key) == 1 and key.isupper():
            for col in sortable(self.spec.view):
                if col.key == key:
                    same = self.table_view.table is not None and self.table_view.table.sort.field == col.field
                    return self._set_spec(sort=col.field, reverse=(not self.spec.reverse) if same else False)

    def _set_spec(self, **changes: Any) -> None:
        self.spec = self.spec.replace(**changes)
        self._rebuild()

    def _rebuild(self) -> None:
        if self.model.state is not None:
            sel = self.table_view.selected()
            table = self.model.table(self.spec)
            self.table_view.set_table(table, keep=sel.key if sel else None)
            self.header.set_table(table)
        self._redraw_chrome()

    def _step_sort(self, step: int) -> None:
        cols = sortable(self.spec.view)
        table = self.table_view.table
        current = table.sort.field if table else cols[0].field
        i = next((n for n, c in enumerate(cols) if c.field == current), 0)
        self._set_spec(sort=cols[(i + step) % len(cols)].field, reverse=False)

    def _switch_view(self, step: int = 0, to: str | None = None) -> None:
        if to is None:
            to = VIEWS[(VIEWS.index(self.spec.view) + step) % len(VIEWS)]
        self.stack.clear()
        self.detail_key = None
        self.frame.body = self.table_view
        keep = self.spec.view == to and not self.spec.scope
        self.spec = self.spec.replace(view=to, scope=(), sort=self.spec.sort if keep else None,
                                      reverse=self.spec.reverse if keep else None)
        self._rebuild()

    def _step_refresh(self, step: int) -> None:
        bigger = [s for s in REFRESH_STEPS if s > self.refresh + 1e-9]
        smaller = [s for s in REFRESH_STEPS if s < self.refresh - 1e-9]
        if step > 0 and bigger:
            self.refresh = bigger[0]
        elif step < 0 and smaller:
            self.refresh = smaller[-1]
        if self.feed is not None:
            self.refresh = self.feed.set_interval(self.refresh)
        self.flash(f"updates every {self.refresh:g}s")

    def _drill(self) -> None:
        row = self.table_view.selected()
        if row is None:
            return
        if self.spec.view == "pool" and row.kind == "row":
            self.stack.append((self.spec, row.key))
            return self._open_detail(row.key)
        scope = scope_of(self.spec, row)
        if not scope:
            return
        self.stack.append((self.spec, row.key))
        self.spec = ViewSpec(view="pool", scope=scope, hide_idle=self.spec.hide_idle)
        table = self.model.table(self.spec)
        pools = [r for r in table.rows if r.kind == "row"]
        if len(pools) == 1:
            # One pool: straight to its detail; Esc comes back here.
            self.spec = self.stack[-1][0]
            return self._open_detail(pools[0].key)
        self.table_view.set_table(table, index=0)
        self.header.set_table(table)
        self._redraw_chrome()

    def _open_detail(self, pool_key: tuple) -> None:
        self.detail_key = pool_key
        self._detail_last = None
        self.detail = DetailView()
        self.frame.body = self.detail
        self._draw_detail()
        self._redraw_chrome()

    def _back(self) -> None:
        if self.detail_key is not None:
            self.detail_key = None
            self.frame.body = self.table_view
            spec, key = self.stack.pop() if self.stack else (self.spec, None)
        elif self.stack:
            spec, key = self.stack.pop()
        elif self.spec.filter.active:
            return self._set_spec(filter=RowFilter())
        else:
            return
        self.spec = spec
        if self.model.state is not None:
            table = self.model.table(spec)
            self.table_view.set_table(table, keep=key)
            self.header.set_table(table)
        self._redraw_chrome()

    # -- the filter prompt ---------------------------------------------------

    def _open_filter(self) -> None:
        self.prompt = FilterPrompt(self.footer, self.spec.filter,
                                   lambda flt: self._guard(lambda: self._set_spec(filter=flt)))
        self.frame.focus_position = "footer"

    def _filter_key(self, key: str) -> None:
        assert self.prompt is not None
        try:
            flt = self.prompt.finish(key)
        except ConfigError as err:
            self.flash(str(err), "error")
            return
        if flt is None:
            return
        self.prompt = None
        self.frame.focus_position = "body"
        self.spec = self.spec.replace(filter=flt)
        self._rebuild()


def run_console(socket_path: Any = None, refresh: float = 1.0, *, view: str = "program",
                thresholds: Thresholds | None = None, spec: ViewSpec | None = None,
                history: float = 300.0, log_file: str | None = None, debug: bool = False) -> int:
    """Open the console on the agent at ``socket_path`` (a Unix socket path
    or a :class:`~connmon_agent.endpoint.Endpoint`; default: the local
    agent); returns the exit status. Used by ``connmon-agent console`` and
    ``connmon-agent demo``. Logs go to ``log_file`` (default
    ``console.log`` in the runtime directory), never to the screen."""
    from .runner import run_screen

    return run_screen(socket_path, refresh, view=view, thresholds=thresholds, spec=spec,
                      history=history, log_file=log_file, debug=debug)

