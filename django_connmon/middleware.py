"""``ConnmonMiddleware``: each request holds its checkouts by name, and a
request that ends with a connection still out is reported as a leak.

Add ``"django_connmon.middleware.ConnmonMiddleware"`` near the top of
``MIDDLEWARE``. Sync- and async-capable; the mode is chosen once.

* Every checkout taken while the request runs — in its own thread, or in a
  thread it started (``Thread.start`` hands the request on, see
  :mod:`django_connmon.scopes`) — is held by ``"GET /orders/<int:pk>/"``
  (method and route, else the view name) in connmon's console.
* ``request.connmon`` is the request's :class:`~django_connmon.scopes.Scope`:
  its checkouts and their total hold time.
* When the request has finished (after Django's ``request_finished``
  closes the request's own connections), any connection the request took
  that is still checked out is a leak: it is logged with where it was
  checked out and sent as the :data:`leak_detected` signal. Django's own
  per-thread connection of the request's thread is not a leak where Django
  keeps it on purpose (inside ``atomic``, or under the test client).
"""
from __future__ import annotations

import contextvars
import logging
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.core.signals import request_finished
from django.dispatch import Signal

from . import scopes
from .reporting import client_api

log = logging.getLogger("django_connmon")

#: Sent with ``request``, ``scope`` and ``checkouts`` (the leaked ones).
leak_detected = Signal()

_finishing: contextvars.ContextVar[Any] = contextvars.ContextVar("django_connmon_finishing", default=None)


class ConnmonMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self._client = client_api()
        scopes.inherit_in_threads()
        request_finished.connect(_on_request_finished, dispatch_uid="django_connmon.request_finished")

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        state = self._begin(request)
        try:
            response = self.get_response(request)
        finally:
            self._leave(state)
        return response

    async def __acall__(self, request: Any) -> Any:
        state = self._begin(request)
        try:
            response = await self.get_response(request)
        finally:
            self._leave(state)
        return response

    def process_view(self, request: Any, view_func: Any, view_args: Any, view_kwargs: Any) -> None:
        scope = getattr(request, "connmon", None)
        if scope is None:
            return None
        name = request_name(request, view_func)
        scope.name = name
        h = getattr(request, "_connmon_holder", None)
        if h is not None:
            try:
                h.name = name
            except Exception:
                pass
        return None

    def _begin(self, request: Any) -> tuple[Any, ...]:
        _finish_pending()  # a request whose request_finished never came
        scope = scopes.Scope(f"{request.method} {request.path}", "request")
        request.connmon = scope
        token = scopes.enter(scope)
        h = None
        if self._client is not None:
            try:
                h = self._client.holder(scope.name, "request").__enter__()
                request._connmon_holder = h
            except Exception:
                h = None
        return (request, scope, token, h)

    def _leave(self, state: tuple[Any, ...]) -> None:
        request, scope, token, h = state
        if h is not None:
            try:
                h.__exit__(None, None, None)
            except Exception:
                pass
        scopes.leave(token)
        _finishing.set((request, scope))


def request_name(request: Any, view_func: Any = None) -> str:
    """``"GET /orders/<int:pk>/"``, else ``"GET app.views.detail"``."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if route:
        return f"{request.method} /{route.lstrip('/')}" if not route.startswith("^") else f"{request.method} {route}"
    name = getattr(match, "view_name", None) or getattr(view_func, "__qualname__", None)
    if name:
        module = getattr(view_func, "__module__", None)
        if module and getattr(match, "view_name", None) is None:
            name = f"{module}.{name}"
        return f"{request.method} {name}"
    return f"{request.method} {request.path}"


def _on_request_finished(sender: Any = None, **kwargs: Any) -> None:
    _finish_pending()


def _finish_pending() -> None:
    pending = _finishing.get()
    if pending is None:
        return
    _finishing.set(None)
    request, scope = pending
    try:
        finish_scope(scope, request)
    except Exception:  # never raise into the application
        log.exception("django_connmon: leak check failed")


def finish_scope(scope: scopes.Scope, request: Any = None) -> list[Any]:
    """End ``scope``; returns (and reports) its leaked checkouts."""
    from django.db import connections

    scope.end()
    if not scope.open_checkouts():
        return []  # the common case: nothing left to look at
    own = set()
    for conn in connections.all(initialized_only=True):
        co = getattr(conn, "_cm_checkout", None)
        if co is not None:
            own.add(co.id)
    leaks = [co for co in scope.open_checkouts() if co.id not in own]
    if leaks:
        from .conf import conf

        if conf.CONNMON_LEAK_LOG:
            for co in leaks:
                log.warning(
                    "django_connmon: %s ended with a connection still checked out "
                    "(alias %r, thread %r, held %.3fs, taken at %s)",
                    scope.name, co.entry.alias, co.thread.name, co.age, co.where or "?",
                )
        leak_detected.send(sender=ConnmonMiddleware, request=request, scope=scope, checkouts=leaks)
    return leaks
