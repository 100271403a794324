"""What a forked child does with the connections it inherited: nothing.

A child shares its parent's sockets. Closing an inherited connection the
polite way sends QUIT (MySQL) or Terminate (PostgreSQL) on the parent's
session and kills it; rolling it back interleaves a ROLLBACK with the
parent's traffic. Python does both on its own: destructors close, and
SQLAlchemy returns garbage-collected checkouts with a reset.

So the child, for everything it inherited:

* points each inherited socket's file descriptor at ``/dev/null``
  (``dup2``), so whatever the driver later writes goes nowhere — the
  parent's descriptor, a separate entry in the parent's table, is untouched;
* keeps the objects alive for the rest of the process (an extra reference),
  so no destructor and no garbage-collection reset ever runs on them, not
  even at interpreter exit.

The cost is the memory of the inherited pools, once per fork generation.
Never raises.
"""
from __future__ import annotations

import os
import stat
from typing import Any, Iterable

try:  # CPython: an extra reference no collector or finalizer can drop
    import ctypes

    _incref = ctypes.pythonapi.Py_IncRef
    _incref.argtypes = [ctypes.py_object]
    _incref.restype = None
except Exception:  # pragma: no cover - other interpreters
    _incref = None

#: Fallback keeper (and what tests inspect): everything kept for good.
_kept: list[Any] = []


def keep_forever(obj: Any) -> None:
    """Never let ``obj`` be destroyed in this process."""
    _kept.append(obj)
    if _incref is not None:
        try:
            _incref(obj)
        except Exception:  # pragma: no cover
            pass


def silence_sockets(fds: Iterable[int]) -> int:
    """Point each socket descriptor in ``fds`` at ``/dev/null``.

    The replacement is ``/dev/null``: ``send``/``recv`` on it fail at once
    with ENOTSOCK — no SIGPIPE, no hang, and drivers ignore errors while
    closing; nothing reaches the database. Descriptors
    that are not sockets are left alone. Returns how many were silenced.
    """
    fds = [fd for fd in fds if _is_socket(fd)]
    if not fds:
        return 0
    done = 0
    try:
        dead = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return 0
    try:
        for fd in fds:
            try:
                os.dup2(dead, fd, inheritable=False)
                done += 1
            except OSError:
                pass
    finally:
        os.close(dead)
    return done


def _is_socket(fd: int) -> bool:
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
