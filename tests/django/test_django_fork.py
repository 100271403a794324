"""fork(): a child gets an empty pool of its own and never touches the
parent's connections — not the one held in a transaction, not the idle ones,
not the one another thread holds — even when it exits normally (destructors
run) and even when the fork skipped Python's fork hooks (uWSGI)."""
from __future__ import annotations

import json
import os

import pytest

from cm_helpers import HERE

SCRIPT = r'''
import ctypes, gc, json, os, sys, threading
sys.path.insert(0, HERE)
if sys.argv[3] == "psycopg2":
    sys.modules["psycopg"] = None   # Django then picks psycopg2
os.environ["DJANGO_SETTINGS_MODULE"] = "cm_settings"
import django
django.setup()
from django.db import connections
from django_connmon import pool_status

alias, how = sys.argv[1], sys.argv[2]
SQL = {"mysql": "SELECT CONNECTION_ID()", "postgresql": "SELECT pg_backend_pid()"}

def sid(conn):
    with conn.cursor() as cur:
        if conn.vendor == "sqlite":
            cur.execute("SELECT 1")
            return id(conn.connection)
        cur.execute(SQL[conn.vendor])
        return cur.fetchone()[0]

conn = connections[alias]
ready, go, out = threading.Event(), threading.Event(), {}

def other_thread():
    c = connections[alias]
    out["thread"] = sid(c)
    ready.set()
    go.wait(20)
    out["thread_after"] = sid(c)
    c.close()

t = None
if how == "os.fork":
    t = threading.Thread(target=other_thread)
    t.start()
    ready.wait(20)

w = connections.create_connection(alias)
idle = sid(w)
held = sid(conn)                  # this thread holds one, in a transaction,
w.close()                         # and one more waits idle in the pool
with conn.cursor() as cur:
    cur.execute("CREATE TEMPORARY TABLE cm_fork (a int)")
conn.set_autocommit(False)
with conn.cursor() as cur:
    cur.execute("INSERT INTO cm_fork VALUES (1)")

if how == "os.fork":
    pid = os.fork()
else:  # what uWSGI does: fork() from C, no Python fork hooks
    pid = ctypes.PyDLL(None).fork()

if pid == 0:
    from django_connmon import close_pool
    from django_connmon.pools import registry
    c = connections[alias]
    inherited_seen = c.connection is not None
    # What gunicorn/Celery advice says to do after fork; with Django's own
    # backends this sends QUIT/Terminate on the parent's sessions.
    connections.close_all()
    close_pool()
    child = sid(c)
    c.close()
    again = sid(c)
    c.close()
    gc.collect()
    print("CHILD " + json.dumps({"child": child, "again": again, "inherited_seen": inherited_seen,
                                 "silenced": registry.silenced,
                                 "pools": pool_status(alias)}), flush=True)
    sys.exit(0)                   # a normal exit: every destructor runs

_, status = os.waitpid(pid, 0)
with conn.cursor() as cur:        # the parent's transaction is intact
    cur.execute("SELECT COUNT(*) FROM cm_fork")
    rows = cur.fetchone()[0]
    after = sid(conn)
conn.commit()
conn.set_autocommit(True)
conn.close()
other = connections.create_connection(alias)
idle_after = sid(other)           # the idle pooled connection still works
other.close()
go.set()
if t is not None:
    t.join(20)
print("PARENT " + json.dumps({"status": status, "idle": idle, "held": held, "rows": rows,
                              "after": after, "idle_after": idle_after, "thread": out.get("thread"),
                              "thread_after": out.get("thread_after"), "pid": os.getpid()}), flush=True)
'''


@pytest.mark.parametrize("how", ["os.fork", "libc-fork"])
@pytest.mark.parametrize("vendor", ["sqlite", "mysql", "postgresql", "postgresql-psycopg2"])
def test_child_uses_its_own_pool_and_leaves_the_parents_connections_alone(request, scripts, vendor, how):
    vendor, _, driver = vendor.partition("-")
    if vendor != "sqlite":
        request.getfixturevalue(f"{vendor}_url")
    alias = {"sqlite": "default"}.get(vendor, vendor)
    # A pool of one: the parent's two checked-out connections would overflow
    # it on return, so a careless child would close them (QUIT/Terminate).
    p = scripts.spawn(SCRIPT.replace("HERE", repr(HERE)), alias, how, driver or "default", name="fork",
                      env={"CM_TEST_POOL_SIZE": "1"})
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = {line.split(" ", 1)[0]: json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line[:5] in ("CHILD", "PAREN")}
    child, parent = lines["CHILD"], lines["PARENT"]
    assert parent["status"] == 0, err
    # The child never saw the parent's connection and opened its own...
    assert child["inherited_seen"] is False
    if vendor != "sqlite":
        # held + idle (+ the other thread's): silenced, never closed
        assert child["silenced"] == (3 if how == "os.fork" else 2)
    [pool] = child["pools"]
    assert pool["pid"] != parent["pid"] and pool["connections"] == 1 and pool["checked_out"] == 0
    if vendor != "sqlite":
        assert child["child"] not in (parent["idle"], parent["held"], parent["thread"])
        assert child["again"] == child["child"]  # ...and pooled it
        # The parent's sessions all survived the child's exit, unchanged.
        assert parent["after"] == parent["held"]
        assert parent["idle_after"] == parent["idle"]
        if how == "os.fork":
            assert parent["thread_after"] == parent["thread"]
    assert parent["rows"] == 1  # no ROLLBACK came from the child


@pytest.mark.parametrize("silence", [True, False])
def test_silenced_socket_keeps_a_childs_close_off_the_parents_session(mysql_url, silence):
    """The mechanism, and why it is needed: a child closing an inherited
    MySQL connection sends QUIT on the parent's session — unless its
    descriptor was pointed at /dev/null first."""
    import pymysql

    from django_connmon.forking import silence_sockets
    from django_connmon.resetter import RESETTERS

    from sqlalchemy.engine import make_url

    u = make_url(mysql_url)
    raw = pymysql.connect(host=u.host, port=u.port or 3306, user=u.username, database=u.database)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                if silence:
                    silence_sockets([RESETTERS["mysql"].socket_fd(raw)])
                raw.close()  # sends COM_QUIT
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        if silence:
            raw.ping(False)  # the parent's session is alive
        else:
            with pytest.raises(Exception, match="Lost connection|2013|2006"):
                raw.ping(False)
    finally:
        try:
            raw.close()
        except Exception:
            pass
