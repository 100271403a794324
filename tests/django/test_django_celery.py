"""The Celery hooks, through Celery's own signal dispatch and task tracer
(``Task.apply``), in real forked children."""
from __future__ import annotations

import json

import pytest

from cm_helpers import HERE

pytest.importorskip("celery")

SCRIPT = r'''
import json, os, sys, threading
sys.path.insert(0, HERE)
os.environ["DJANGO_SETTINGS_MODULE"] = "cm_settings"
import django
django.setup()
from celery import Celery
from celery.signals import worker_process_init
from django.db import connections
import django_connmon.celery  # the whole setup
from django_connmon import pool_status
from django_connmon.middleware import leak_detected

alias = sys.argv[1]
SQL = {"mysql": "SELECT CONNECTION_ID()", "postgresql": "SELECT pg_backend_pid()"}
app = Celery("cm", broker="memory://", backend="cache+memory://")
seen = {}

def sid():
    with connections[alias].cursor() as cur:
        cur.execute(SQL[connections[alias].vendor])
        return cur.fetchone()[0]

@app.task(name="shop.tasks.charge")
def charge():
    s = sid()
    co = connections[alias].checkout
    seen["holder"] = co.holder
    seen["kind"] = co.scope.kind
    return s

@app.task(name="shop.tasks.leaky")
def leaky():
    t = threading.Thread(target=sid, name="task-thread")
    t.start(); t.join()

leaks = []
leak_detected.connect(lambda sender, scope, checkouts, **kw: leaks.append((scope.name, [c.thread.name for c in checkouts])), weak=False)

parent = sid()                    # the parent (a worker's main process) holds one
pid = os.fork()
if pid == 0:
    worker_process_init.send(sender=None)
    first = charge.apply().get()
    out_after_first = pool_status(alias)[0]["checked_out"]
    second = charge.apply().get()
    leaky.apply().get()
    print("CHILD " + json.dumps({"first": first, "second": second, "parent": parent,
        "out_after_first": out_after_first, "holder": seen["holder"], "kind": seen["kind"],
        "pid": os.getpid(), "pools": pool_status(alias), "leaks": leaks}), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
print("PARENT " + json.dumps({"after": sid()}), flush=True)
'''


@pytest.mark.parametrize("vendor", ["mysql", "postgresql"])
def test_prefork_child_tasks_use_their_own_pool_named_by_task(request, scripts, vendor):
    request.getfixturevalue(f"{vendor}_url")
    p = scripts.spawn(SCRIPT.replace("HERE", repr(HERE)), vendor, name="celery")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line[:5] in ("CHILD", "PAREN")}
    child, parent = lines["CHILD"], lines["PARENT"]
    assert child["first"] != child["parent"]            # a connection of its own
    assert child["second"] == child["first"]            # returned after the task, reused
    assert child["out_after_first"] == 0
    assert child["holder"] == "shop.tasks.charge" and child["kind"] == "task"
    [pool] = child["pools"]
    assert pool["pid"] == child["pid"]
    assert child["leaks"] == [["shop.tasks.leaky", ["task-thread"]]]
    assert parent["after"] == child["parent"]           # the parent's session survived
