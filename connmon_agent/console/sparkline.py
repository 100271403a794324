"""Sparklines: a run of numbers as a string of block characters.

Pure text, no urwid, so the headless twin and the tests can use it.
"""
from __future__ import annotations

from typing import Sequence

#: Eight heights; a zero is drawn as a space so "nothing held" reads as blank.
BLOCKS = " ▁▂▃▄▅▆▇█"
ASCII_BLOCKS = " .:-=+*#@"


def sparkline(values: Sequence[float | None], width: int, top: float | None = None,
              blocks: str = BLOCKS) -> str:
    """The last ``width`` values as exactly ``width`` characters, right-aligned.

    ``None`` (no sample in that slot) draws as a space, like zero. Heights are
    scaled to ``top`` (default: the largest value shown); any value above zero
    gets at least the lowest block, so a single held connection is visible.
    """
    if width <= 0:
        return ""
    shown = list(values[-width:])
    if top is None:
        top = max((v for v in shown if v is not None), default=0)
    levels = len(blocks) - 1
    out = []
    for v in shown:
        if not v or v <= 0 or not top:
            out.append(blocks[0])
            continue
        level = int(round(v / top * levels))
        out.append(blocks[min(max(level, 1), levels)])
    return blocks[0] * (width - len(shown)) + "".join(out)
