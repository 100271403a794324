"""The filter prompt: ``/`` opens an edit line in place of the footer's
first line; the filter follows the text as it is typed (a half-typed
expression keeps the last good one), Enter keeps it, Esc restores the
filter from before."""
from __future__ import annotations

from typing import Callable

import urwid

from ..errors import ConfigError
from .filters import RowFilter
from .footer import Footer, keys_markup

PROMPT_KEYS = (("Enter", "keep"), ("Esc", "cancel"))


class FilterPrompt:
    """One open prompt. ``on_change`` gets each good filter as it is typed;
    ``finish`` takes Enter or Esc and gives back the filter to keep."""

    def __init__(self, footer: Footer, before: RowFilter,
                 on_change: Callable[[RowFilter], None]) -> None:
        self.footer = footer
        self.before = before
        self.on_change = on_change
        self.edit = urwid.Edit(("key", "/"), before.describe())
        self.edit.set_edit_pos(len(self.edit.edit_text))
        urwid.connect_signal(self.edit, "postchange", lambda *a: self._changed())
        footer.pile.contents[0] = (urwid.AttrMap(self.edit, "footer"), footer.pile.options())
        footer.pile.focus_position = 0

    def _changed(self) -> None:
        try:
            flt = RowFilter.parse(self.edit.edit_text)
        except ConfigError as err:   # a half-typed expression: keep the last good one
            self.footer.keys.set_text([("error", f" {err} ")])
            return
        self.footer.keys.set_text(keys_markup(PROMPT_KEYS))
        self.on_change(flt)

    def finish(self, key: str) -> RowFilter | None:
        """The filter to keep after ``key`` (None: the prompt stays open).
        Raises ConfigError when Enter is pressed on a bad expression."""
        if key == "esc":
            flt = self.before
        elif key == "enter":
            flt = RowFilter.parse(self.edit.edit_text)
        else:
            return None
        self.footer.pile.contents[0] = (self.footer.info, self.footer.pile.options())
        return flt
