"""Which event loop the agent runs on: uvloop's when it is installed
(a dependency of connmon where it has wheels), else asyncio's own.

uvloop runs the loop and the transports in C, which takes 2 to 3 µs (about
a tenth) off the agent's CPU per report at 10,000 processes
(``benchmarks/bench_agent_ingest.py`` measures both).
``CONNMON_AGENT_LOOP=asyncio`` forces the standard loop, ``=uvloop``
requires uvloop (an error when it is missing); the default, ``auto``, uses
uvloop when it imports.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Callable, Coroutine

from ..errors import ConfigError

ENV = "CONNMON_AGENT_LOOP"
CHOICES = ("auto", "asyncio", "uvloop")


def loop_factory() -> tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The name of the loop to use and its factory (None: asyncio's default)."""
    choice = os.environ.get(ENV, "auto") or "auto"
    if choice not in CHOICES:
        raise ConfigError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)}")
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ConfigError(f"{ENV}=uvloop but uvloop is not installed (pip install uvloop)") from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, Any]) -> Any:
    """``asyncio.run(main)`` on the loop :func:`loop_factory` picks."""
    _name, factory = loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
