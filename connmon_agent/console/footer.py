"""The footer: messages and what is filtered, hidden or grouped, the sort
keys of the view, and the keys; the filter prompt borrows its first line."""
from __future__ import annotations

import urwid

from .columns import Column, sortable
from .markup import Markup
from .scope import describe_scope
from .settings import ViewSpec
from .source import LinkStatus


KEYS = (("q", "quit"), ("?", "help"), ("/", "filter"), ("!", "invert"), ("i", "idle"),
        ("g", "group"), ("Tab", "view"), ("⏎", "open"), ("Esc", "back"), ("␣", "pause"),
        ("+-", "speed"), ("<>", "sort"), ("r", "rev"))
DETAIL_KEYS = (("q", "quit"), ("?", "help"), ("Esc", "back"), ("␣", "pause"), ("+-", "speed"),
               ("↑↓", "scroll"))


def keys_markup(keys: tuple[tuple[str, str], ...]) -> Markup:
    out: Markup = []
    for k, what in keys:
        out += [("key", k), ("footer", f" {what} ")]
    return out


def sort_keys_markup(view: str, sort: Column | None) -> Markup:
    """``sort: Host Program pRocs ...``: each column's title with its (capital)
    sort key highlighted where the title has it, else after it."""
    out: Markup = [("footer", "sort:")]
    for c in sortable(view):
        attr = "sorted" if sort is not None and c.field == sort.field else "footer"
        title = c.title.lower()
        out.append(("footer", " "))
        i = title.find(c.key.lower())
        if i < 0:
            out += [(attr, title), ("footer", "("), ("key", c.key), ("footer", ")")]
        else:
            out += [(attr, title[:i]), ("key", c.key), (attr, title[i + 1:])]
    return out


class Footer(urwid.WidgetWrap):
    """Messages and the state of filter/idle/group/pause above the keys."""

    def __init__(self) -> None:
        self.info = urwid.Text("", wrap="clip")
        self.keys = urwid.Text("", wrap="clip")
        self.sortkeys = urwid.Text("", wrap="clip")
        self.pile = urwid.Pile([self.info, urwid.AttrMap(self.sortkeys, "footer"),
                                urwid.AttrMap(self.keys, "footer")])
        super().__init__(self.pile)

    def set(self, info: Markup, keys: Markup, sortkeys: Markup | None) -> None:
        self.info.set_text(info or "")
        self.keys.set_text(keys)
        self.sortkeys.set_text(sortkeys or "")


def info_markup(breadcrumb: str, link: LinkStatus, spec: ViewSpec,
                message: tuple[str, str] | None) -> Markup:
    """Where we are, the link's error, what is filtered, hidden or grouped,
    and the latest message."""
    info: Markup = [("label", breadcrumb)]
    if not link.connected and link.error:
        info += ["  ", ("error", f" {link.error} ")]
    flt = spec.filter
    if flt.active:
        info += ["  ", ("warn", f"filter /{flt.describe()}/" + (" (inverted)" if flt.inverted else ""))]
    if spec.hide_idle:
        info += ["  ", ("warn", "idle hidden")]
    if spec.group:
        info += ["  ", ("value", f"grouped by {spec.group}")]
    if message:
        info += ["  ", message]
    return info


def breadcrumb(levels: list[ViewSpec], detail_key: tuple | None) -> str:
    """``program view › pools of host=web1 › pool 2 of web1 pid 7``: the
    last three levels of the drill-down."""
    parts = [f"pools of {describe_scope(spec.scope)}" if spec.scope else f"{spec.view} view"
             for spec in levels]
    if detail_key is not None:
        host, pid, _, pool_id = detail_key
        parts.append(f"pool {pool_id} of {host} pid {pid}")
    return " › ".join(parts[-3:])
