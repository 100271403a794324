"""Colours and text helpers shared by the console's widgets: the palette,
the focus map of table rows, urwid markup and fitting text to a width.
No widgets here, so the detail and help screens can use it too."""
from __future__ import annotations

from typing import Any

PALETTE = [
    ("title", "white,bold", "dark blue"),
    ("title dim", "light gray", "dark blue"),
    ("live", "light green,bold", "dark blue"),
    ("lost", "white,bold", "dark red"),
    ("paused", "black", "yellow"),
    ("label", "light gray", ""),
    ("value", "white,bold", ""),
    ("max", "dark cyan", ""),
    ("colhead", "black", "light gray"),
    ("sorted", "black,bold", "dark cyan"),
    ("row", "", ""),
    ("group", "white,bold,underline", ""),
    ("stale", "dark gray", ""),
    ("warn", "yellow,bold", ""),
    ("crit", "light red,bold", ""),
    ("spark", "dark green", ""),
    ("bar", "dark green", ""),
    ("focus", "black", "light gray"),
    ("focus group", "black,bold,underline", "light gray"),
    ("focus stale", "dark gray", "light gray"),
    ("focus warn", "brown,bold", "light gray"),
    ("focus crit", "dark red,bold", "light gray"),
    ("focus spark", "dark green", "light gray"),
    ("footer", "black", "light gray"),
    ("key", "dark blue,bold", "light gray"),
    ("msg", "white", "dark blue"),
    ("error", "white,bold", "dark red"),
    ("section", "yellow,bold", ""),
    ("help", "", ""),
    ("helpkey", "light cyan,bold", ""),
]

FOCUS_MAP: dict[str | None, str] = {
    None: "focus", "row": "focus", "group": "focus group", "stale": "focus stale",
    "warn": "focus warn", "crit": "focus crit", "spark": "focus spark",
}

Markup = list[Any]


def fit(text: str, width: int, align: str = "left") -> str:
    """``text`` in exactly ``width`` cells: padded, or cut with an ellipsis."""
    if len(text) > width:
        return text[: width - 1] + "…" if width > 1 else text[:width]
    return text.ljust(width) if align == "left" else text.rjust(width)
