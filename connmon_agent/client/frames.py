"""``where``: the first application frame of a checkout's stack.

The walk starts at the caller of the pool event and skips frames of
SQLAlchemy, connmon, Django's database layer, django_connmon and the
standard library. What each code object is (skipped, or its display text)
is cached by the code object's id (hashing a code object hashes its whole
contents), so a checkout costs one dict lookup per frame walked, and the
text is formatted only when a report or ``open_checkouts()`` shows it.
``benchmarks/bench_plugin_overhead.py`` measures the cost; it is why frame
capture is off unless asked for. The cache is bounded and holds the code
objects it describes (so their ids cannot be reused while cached).

Constraints: never raises (returns None); imports nothing optional.
"""
from __future__ import annotations

import importlib.util
import os
import site
import sys
import sysconfig
from types import CodeType, FrameType

#: Frames walked at most before giving up.
MAX_DEPTH = 64
#: Code objects remembered at most (the cache is cleared when full).
MAX_CACHE = 8192

_SKIP = ""
#: id(code) -> (code, display path or _SKIP)
_cache: dict[int, tuple[CodeType, str]] = {}
_ready = False
_own_prefixes: tuple[str, ...] = ()
_stdlib_prefixes: tuple[str, ...] = ()
_site_prefixes: tuple[str, ...] = ()
_display_roots: tuple[str, ...] = ()


def capture(depth: int = 2) -> tuple[str, int, str] | None:
    """``(path, line, function)`` of the first application frame above the
    caller ``depth`` levels up, or None. Format it with :func:`format`."""
    try:
        f: FrameType | None = sys._getframe(depth)
        cache = _cache
        n = 0
        while f is not None and n < MAX_DEPTH:
            code = f.f_code
            hit = cache.get(id(code))
            if hit is not None and hit[0] is code:
                shown = hit[1]
            else:
                shown = _classify(code)
            if shown:
                return (shown, f.f_lineno, code.co_name)
            f = f.f_back
            n += 1
    except Exception:
        pass
    return None


def format(where: tuple[str, int, str] | None) -> str | None:
    """``"path/file.py:LINE in func"``, or None."""
    if where is None:
        return None
    return f"{where[0]}:{where[1]} in {where[2]}"


def _classify(code: CodeType) -> str:
    if not _ready:
        _init_prefixes()
    filename = code.co_filename
    shown = _SKIP if _is_library(filename) else _display(filename)
    if len(_cache) >= MAX_CACHE:
        _cache.clear()
    _cache[id(code)] = (code, shown)
    return shown


def _is_library(filename: str) -> bool:
    if not filename or filename.startswith("<frozen"):
        return True
    if filename.startswith(_own_prefixes):
        return True
    # a non-venv install keeps site-packages inside the stdlib directory
    return filename.startswith(_stdlib_prefixes) and not filename.startswith(_site_prefixes)


def _package_dir(name: str, sub: str = "") -> str | None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    root = os.path.dirname(os.path.abspath(spec.origin))
    return os.path.join(root, sub) + os.sep if sub else root + os.sep


def _init_prefixes() -> None:
    global _ready, _own_prefixes, _stdlib_prefixes, _site_prefixes, _display_roots
    own = [
        _package_dir("sqlalchemy"),
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # connmon_agent
        _package_dir("django", "db"),
        _package_dir("django_connmon"),
    ]
    _own_prefixes = tuple(p for p in own if p)
    paths = sysconfig.get_paths()
    stdlib = tuple(
        os.path.join(os.path.abspath(paths[k]), "")
        for k in ("stdlib", "platstdlib")
        if paths.get(k)
    )
    try:
        sites = list(site.getsitepackages()) + [site.getusersitepackages()]
    except Exception:  # some embedded interpreters lack parts of site
        sites = []
    sites += [paths.get("purelib", ""), paths.get("platlib", "")]
    keep = tuple(os.path.join(os.path.abspath(s), "") for s in sites if s)
    _stdlib_prefixes = stdlib
    _site_prefixes = keep
    roots = [os.path.join(os.path.abspath(p), "") for p in sys.path if p and os.path.isabs(p)]
    roots.append(os.path.join(os.getcwd(), ""))
    # the longest root first, so a file is shown relative to its package
    _display_roots = tuple(sorted(set(roots), key=len, reverse=True))
    _ready = True


def _display(filename: str) -> str:
    for root in _display_roots:
        if filename.startswith(root) and len(filename) > len(root):
            return filename[len(root):]
    return filename
