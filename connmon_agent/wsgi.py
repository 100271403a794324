"""``ConnmonMiddleware`` for any WSGI application that uses SQLAlchemy
(Flask, Pyramid, Bottle...): each request holds its checkouts by name, and a
request that ends with a connection still checked out is reported.

::

    from connmon_agent.wsgi import ConnmonMiddleware
    app.wsgi_app = ConnmonMiddleware(app.wsgi_app)          # Flask
    application = ConnmonMiddleware(application)            # any WSGI app

The engine must be instrumented (``?plugin=connmon`` in its URL). The
request ends when the server closes the response iterable (PEP 3333), so
streamed bodies count as part of the request. Threads do not inherit the
request by themselves (Python < 3.14): hand them ``environ["connmon.holder"]
.bind(fn)``.

Never raises into the application: a failure of connmon is logged and the
request goes on as if the middleware were not there.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Iterator

log = logging.getLogger("connmon_agent.wsgi")

LeakCallback = Callable[[dict, list], None]


def request_name(environ: dict) -> str:
    """``"GET /orders/42"``: method and path (no route is known at WSGI level)."""
    return f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '/')}"


class ConnmonMiddleware:
    """WSGI middleware; ``name`` maps an environ to the holder's name,
    ``on_leak(environ, checkouts)`` is called for leaked checkouts (after
    they are logged at WARNING on ``connmon_agent.wsgi``)."""

    def __init__(
        self,
        app: Callable[..., Iterable[bytes]],
        name: Callable[[dict], str] = request_name,
        on_leak: LeakCallback | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.on_leak = on_leak

    def __call__(self, environ: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        from .client import holder

        try:
            h = holder(self.name(environ), "request")
            h.__enter__()
            environ["connmon.holder"] = h
        except Exception:
            log.exception("connmon: cannot name the request")
            return self.app(environ, start_response)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            self._end(h, environ)
            raise
        finally:
            try:
                h.__exit__(None, None, None)
            except Exception:
                pass
        return _ClosingIterable(result, lambda: self._end(h, environ))

    def _end(self, h: Any, environ: dict) -> None:
        try:
            leaks = h.open_checkouts()
        except Exception:
            return
        if not leaks:
            return
        for co in leaks:
            log.warning(
                "connmon: %s ended with a connection still checked out "
                "(pool %s, thread %r, held %.3fs, taken at %s)",
                h.name, co.pool, co.thread, co.age, co.where or "?",
            )
        if self.on_leak is not None:
            try:
                self.on_leak(environ, leaks)
            except Exception:
                log.exception("connmon: on_leak callback failed")


class _ClosingIterable:
    """The application's response, with the leak check after its close()."""

    def __init__(self, result: Iterable[bytes], after_close: Callable[[], None]) -> None:
        self.result = result
        self.after_close = after_close

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.result)

    def close(self) -> None:
        try:
            close = getattr(self.result, "close", None)
            if close is not None:
                close()
        finally:
            self.after_close()
