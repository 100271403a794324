"""Views that exercise the pool.

* ``/``                 one short query (the benchmark's view)
* ``/hit/``             an insert and a count in a transaction
* ``/slow/?s=0.5``      holds its connection while the database sleeps
* ``/leak/``            starts a thread that queries and never closes:
                        the middleware reports the leak at request end
* ``/leak-fixed/``      the same thread with ``@auto_close_db``: no leak
* ``/whoami/``          worker pid and the server's session id (tests)
* ``/pools/``           this process's pools (django_connmon.pool_status)
"""
from __future__ import annotations

import os
import threading
import time

from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse

from django_connmon import auto_close_db, pool_status

from .models import Hit

SESSION_SQL = {
    "mysql": "SELECT CONNECTION_ID()",
    "postgresql": "SELECT pg_backend_pid()",
    "sqlite": "SELECT 0",
}
SLEEP_SQL = {
    "mysql": "SELECT SLEEP(%s)",
    "postgresql": "SELECT pg_sleep(%s)",
}


def index(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        cur.fetchone()
    return HttpResponse("ok\n")


def hit(request):
    with transaction.atomic():
        Hit.objects.create(path=request.path)
        n = Hit.objects.count()
    return HttpResponse(f"{n} hits\n")


def slow(request):
    seconds = min(float(request.GET.get("s", "0.5")), 10.0)
    with connection.cursor() as cur:
        sql = SLEEP_SQL.get(connection.vendor)
        if sql:
            cur.execute(sql, [seconds])
        else:  # SQLite cannot sleep: hold the connection from Python
            cur.execute("SELECT 1")
            time.sleep(seconds)
    return HttpResponse(f"slept {seconds}\n")


def _query_in_thread(work, name: str) -> None:
    t = threading.Thread(target=work, name=name, daemon=True)
    t.start()
    t.join(10)


def leak(request):
    def work() -> None:
        with connection.cursor() as cur:  # this thread's own connection...
            cur.execute("SELECT 1")
        # ...never closed: it stays checked out after the thread ends

    _query_in_thread(work, "leaky-thread")
    return HttpResponse("leaked one connection into a thread\n")


def leak_fixed(request):
    @auto_close_db
    def work() -> None:
        with connection.cursor() as cur:
            cur.execute("SELECT 1")

    _query_in_thread(work, "tidy-thread")
    return HttpResponse("the thread gave its connection back\n")


def whoami(request):
    with connection.cursor() as cur:
        cur.execute(SESSION_SQL[connection.vendor])
        session = cur.fetchone()[0]
    return JsonResponse({"pid": os.getpid(), "session": session})


def pools(request):
    return JsonResponse({"pid": os.getpid(), "pools": pool_status()})
