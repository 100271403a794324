"""Views of the django_connmon tests; ``?using=alias`` picks the database."""
from __future__ import annotations

import threading

from django.db import connections
from django.http import HttpResponse, JsonResponse
from django.urls import path

from django_connmon import auto_close_db

SESSION_SQL = {
    "mysql": "SELECT CONNECTION_ID()",
    "postgresql": "SELECT pg_backend_pid()",
    "sqlite": "SELECT 1",
}

#: Threads the leak view started, so tests can let them go.
release = threading.Event()
started: list[threading.Thread] = []


def _session_id(alias: str) -> int:
    conn = connections[alias]
    with conn.cursor() as cur:
        cur.execute(SESSION_SQL[conn.vendor])
        return cur.fetchone()[0]


def session(request):
    alias = request.GET.get("using", "default")
    from cmtestapp.models import Item

    Item.objects.using(alias).count()
    return JsonResponse({"session": _session_id(alias), "raw": id(connections[alias].connection)})




def leak(request):
    alias = request.GET.get("using", "default")
    fixed = request.GET.get("fixed") == "1"
    done = threading.Event()

    def run() -> None:
        try:
            if fixed:
                auto_close_db(lambda: _session_id(alias))()
            else:
                _session_id(alias)
        finally:
            done.set()
        release.wait(10)

    t = threading.Thread(target=run, name="leaker")
    started.append(t)
    t.start()
    done.wait(10)
    return HttpResponse("ok")


urlpatterns = [
    path("session/", session, name="session"),
    path("leak/", leak, name="leak"),
]
