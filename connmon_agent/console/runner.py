"""Running the console in a real terminal: logging to a file, stderr away
from the screen, SIGTERM and Ctrl-C ending it cleanly, one line on error.
"""
from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from typing import Any, Iterator

from ..errors import ConnmonError
from ..paths import default_runtime_dir, default_socket_path
from .settings import Thresholds, ViewSpec

log = logging.getLogger("connmon.console")


def default_log_file() -> str:
    return os.path.join(default_runtime_dir(), "console.log")


@contextlib.contextmanager
def logging_to(path: str, debug: bool) -> Iterator[Any]:
    """Send connmon's logs, warnings, stray stderr writes and thread
    tracebacks to ``path`` for the duration; restore everything after."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    stream = open(path, "a", encoding="utf-8", errors="replace", buffering=1)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger("connmon")
    old_level, old_propagate = root.level, root.propagate
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    old_stderr = sys.stderr
    old_hook = threading.excepthook
    logging.captureWarnings(True)
    warn_logger = logging.getLogger("py.warnings")
    warn_logger.addHandler(handler)

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        log.error("uncaught error in thread %s", args.thread.name if args.thread else "?",
                  exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.stderr = stream
    threading.excepthook = thread_hook
    try:
        yield stream
    finally:
        sys.stderr = old_stderr
        threading.excepthook = old_hook
        logging.captureWarnings(False)
        warn_logger.removeHandler(handler)
        root.removeHandler(handler)
        root.setLevel(old_level)
        root.propagate = old_propagate
        stream.close()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def run_screen(socket_path: Any, refresh: float, *, view: str = "program",
               thresholds: Thresholds | None = None, spec: ViewSpec | None = None,
               history: float = 300.0, log_file: str | None = None, debug: bool = False) -> int:
    from ..query import fetch_state
    from .app import ConsoleApp

    path = socket_path or default_socket_path()
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        print("connmon-agent console: needs a terminal; use --once --json or --csv for a pipe",
              file=sys.stderr)
        return 2
    # Fail with one line, before taking over the screen, if there is no agent.
    try:
        fetch_state(path, timeout=3.0)
    except ConnmonError as err:
        print(f"connmon-agent console: {err}", file=sys.stderr)
        return 1
    log_path = log_file or default_log_file()
    spec = spec or ViewSpec(view=view)
    app = ConsoleApp(path, refresh=refresh, thresholds=thresholds, spec=spec, history=history,
                     log_file=log_path)
    # SIGTERM ends the console as Ctrl-C does (the terminal is restored);
    # a handler the caller installed (the demo's) is left alone.
    previous = signal.getsignal(signal.SIGTERM)
    if previous in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        with logging_to(log_path, debug):
            log.info("console on %s, refresh %.2fs", path, refresh)
            try:
                return app.run()
            except KeyboardInterrupt:
                log.info("interrupted")
                return 0
            except Exception:
                log.exception("the console failed")
                raise
    except Exception as err:   # reported after the terminal is restored
        print(f"connmon-agent console: {err.__class__.__name__}: {err} (details in {log_path})",
              file=sys.stderr)
        return 1
    finally:
        if previous in (signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
