"""Celery: pools reset in every prefork child, checkouts named by task, and
connections returned after every task.

Importing this module is the whole setup (Celery's signals are global)::

    # proj/celery.py
    import django_connmon.celery  # noqa: F401

or call :func:`setup` explicitly. Only this module imports Celery.

* ``worker_process_init`` (each prefork child, right after the fork): the
  child's pools start empty and the connmon client's state is the child's
  own — also where the fork hooks did not run.
* ``task_prerun``: checkouts during the task are held by the task's name
  (``kind="task"``), and threads the task starts inherit it.
* ``task_postrun`` (success or failure): the task's connections go back to
  the pool (:func:`~django_connmon.auto_close_db` semantics), and any
  connection still out — in a thread the task started — is reported as a
  leak, as the middleware does for requests.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

from celery import signals

from . import scopes
from .decorators import close_thread_connections
from .reporting import client_api

log = logging.getLogger("django_connmon")

_lock = threading.Lock()
_installed = False
#: task_id -> (scope, scope token, client holder)
_running: dict[str, tuple[Any, Any, Any]] = {}


def reset_after_fork(**kwargs: Any) -> None:
    """worker_process_init: this child's own, empty pools."""
    from .pools import registry

    registry.check_fork()
    api = client_api()
    check_fork = getattr(api, "check_fork", None)
    if check_fork is not None:
        try:
            check_fork()
        except Exception:
            pass


def task_started(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """task_prerun: name this task's checkouts after it."""
    try:
        name = getattr(task, "name", None) or "celery task"
        scope = scopes.Scope(name, "task")
        token = scopes.enter(scope)
        h = None
        api = client_api()
        if api is not None:
            try:
                h = api.holder(name, "task").__enter__()
            except Exception:
                h = None
        with _lock:
            _running[task_id or ""] = (scope, token, h)
    except Exception:  # never break the task
        log.exception("django_connmon: task_prerun failed")


def task_finished(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    """task_postrun: return the task's connections; report leaks."""
    from .middleware import finish_scope

    with _lock:
        running = _running.pop(task_id or "", None)
    try:
        close_thread_connections()
    except Exception:
        log.exception("django_connmon: returning a task's connections failed")
    if running is None:
        return
    scope, token, h = running
    try:
        if h is not None:
            h.__exit__(None, None, None)
        scopes.leave(token)
        finish_scope(scope)
    except Exception:
        log.exception("django_connmon: task_postrun failed")


def setup() -> None:
    """Connect the handlers (idempotent; importing this module does it)."""
    global _installed
    with _lock:
        if _installed:
            return
        signals.worker_process_init.connect(reset_after_fork, weak=False)
        signals.task_prerun.connect(task_started, weak=False)
        signals.task_postrun.connect(task_finished, weak=False)
        scopes.inherit_in_threads()
        _installed = True


setup()
