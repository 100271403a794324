"""Giving the memory of big status snapshots back to the operating system.

At 10,000 processes a ``state`` frame is about 27 MB, built from 10,000
encoded process rows of a few KB each. Once it is sent and dropped, glibc's
malloc keeps the freed space: big blocks come from the heap rather than
``mmap`` after glibc raises its mmap threshold (it does so each time such a
block is freed), and the rows' small blocks leave holes between live ones.
The agent's RSS then stayed 40 to 80 MB above its ingesting size after one
status. So the agent fixes the threshold (:func:`tune`: blocks from
``MMAP_THRESHOLD`` up are mapped, and unmapped when freed) and, after it
dropped a big snapshot, asks malloc to return its free pages
(:func:`trim`, ``malloc_trim(0)``; once per big snapshot dropped, never
on the report path).

Both are glibc functions reached through ctypes; where they are missing
(musl, macOS) or fail to load, both do nothing. Never raises.
"""
from __future__ import annotations

import ctypes
import logging
from typing import Any

log = logging.getLogger("connmon.agent")

#: Blocks of this size and up are mapped separately (glibc ``M_MMAP_THRESHOLD``).
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3
#: Free space at the top of the heap that malloc keeps rather than returns
#: by itself (glibc ``M_TRIM_THRESHOLD``).
TRIM_THRESHOLD = 32 << 20
_M_TRIM_THRESHOLD = -1

_libc: Any = None
_loaded = False


def _glibc() -> Any:
    """The C library when it has glibc's malloc_trim and mallopt, else None."""
    global _libc, _loaded
    if not _loaded:
        _loaded = True
        try:
            lib = ctypes.CDLL(None)
            lib.malloc_trim.argtypes = [ctypes.c_size_t]
            lib.malloc_trim.restype = ctypes.c_int
            lib.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            lib.mallopt.restype = ctypes.c_int
            _libc = lib
        except (OSError, AttributeError):
            _libc = None
    return _libc


def tune() -> bool:
    """Fix malloc's mmap threshold at MMAP_THRESHOLD; False if not glibc."""
    lib = _glibc()
    if lib is None:
        return False
    try:
        # Fixing one threshold stops glibc adjusting both; the trim
        # threshold stays high, as glibc's adjustment would leave it, so
        # that freeing a few hundred KB never costs an sbrk (trim() after a
        # big snapshot does that job).
        return bool(lib.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(lib.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except Exception:  # a foreign C library must never take the agent down
        log.debug("mallopt failed", exc_info=True)
        return False


def trim() -> bool:
    """Return free heap pages to the OS; True if some were (glibc only)."""
    lib = _glibc()
    if lib is None:
        return False
    try:
        return bool(lib.malloc_trim(0))
    except Exception:
        log.debug("malloc_trim failed", exc_info=True)
        return False
