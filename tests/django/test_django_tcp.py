"""A Django project reporting its pooled backend's pool to an agent over
authenticated TCP (CONNMON_ADDR + CONNMON_SECRET_FILE): a real agent
with a secret, a real Django process, the Django test client, SQLite."""
from __future__ import annotations

import os
from typing import Any

from cluster_support import make_agent, write_config, write_secret

APP = """
import os, sys
import django
from django.conf import settings
from django.db import connection
from django.http import HttpResponse
from django.urls import path

def view(request):
    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    return HttpResponse("ok")

urlpatterns = [path("q/", view)]
settings.configure(
    DEBUG=False, ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__, SECRET_KEY="x",
    INSTALLED_APPS=["django_connmon"], MIDDLEWARE=["django_connmon.middleware.ConnmonMiddleware"],
    DATABASES={"default": {"ENGINE": "django_connmon.backends.sqlite3", "NAME": sys.argv[1],
                           "POOL": {"pool_size": 2, "max_overflow": 0}}},
    CONNMON_PROGRAM_NAME="dj-tcp", CONNMON_INTERVAL=0.2,
    CONNMON_ADDR=sys.argv[2], CONNMON_SECRET_FILE=sys.argv[3],
)
django.setup()
from django.core import checks
errors = checks.run_checks()
assert not errors, errors
from django.test import Client
assert Client().get("/q/").status_code == 200
print("ready", flush=True)
sys.stdin.readline()
"""


def test_pooled_backend_reports_over_tcp_with_the_secret(short_tmp: str, scripts: Any) -> None:
    made: list[Any] = []
    secret = write_secret(short_tmp)
    cfg = write_config(short_tmp, ["n1"], secret=secret)
    agent = make_agent(short_tmp, cfg["path"], "n1", "agent-host", made).start()
    try:
        env = {"CONNMON_CONFIG": os.path.join(short_tmp, "none.cfg"), "CONNMON_SECRET_FILE": ""}
        p = scripts.spawn(APP, os.path.join(short_tmp, "dj.db"), f"127.0.0.1:{cfg['ports']['n1']}", secret,
                          env=env, name="djtcp")
        line = p.stdout.readline().strip()
        assert line == "ready", p.stderr.read() if p.poll() is not None else line

        def reported(s: dict[str, Any]) -> Any:
            procs = [q for q in s["processes"] if q["program"] == "dj-tcp"]
            return procs and procs[0]["pools"] and procs[0]

        row = agent.wait_state(reported, timeout=10, what="the Django process over TCP")["processes"]
        (proc,) = [q for q in row if q["program"] == "dj-tcp"]
        assert proc["pid"] == p.pid
        (pool,) = proc["pools"]
        assert pool["name"] == "django:default" and pool["target"].startswith("sqlite")
        assert pool["counters"]["checkouts"] >= 1 and pool["gauges"]["connections"] == 1
        assert agent.state()["agent"]["stats"]["forged"] == 0
        p.stdin.write("\n")
        p.stdin.flush()
        assert p.wait(10) == 0
    finally:
        for a in made:
            a.kill()
