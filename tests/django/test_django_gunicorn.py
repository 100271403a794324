"""example_project under gunicorn, 4 workers, concurrent load, on MariaDB
and PostgreSQL, reporting to a real agent: no errors, a pool per worker,
and the agent's connection count equal to the server's own."""
from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from cm_helpers import EXAMPLE, free_port, wait_for

REQUESTS = 300
DB_PORTS = {"mysql": 3306, "postgresql": 5432}


def get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


@pytest.fixture
def gunicorn(short_tmp):
    """Start example_project under gunicorn; always killed by pid."""
    procs = []

    def start(db_url: str, socket_path: str, program: str, workers: int = 4):
        port = free_port()
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="example.settings",
            EXAMPLE_DATABASE_URL=db_url,
            EXAMPLE_BIND=f"127.0.0.1:{port}",
            EXAMPLE_WORKERS=str(workers),
            EXAMPLE_PROGRAM_NAME=program,
            CONNMON_SOCKET=socket_path,
            CONNMON_INTERVAL="0.2",
        )
        log = open(os.path.join(short_tmp, f"gunicorn-{port}.log"), "wb")
        p = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"],
                             cwd=EXAMPLE, env=env, stdout=log, stderr=subprocess.STDOUT)
        procs.append((p, log))

        def up():
            assert p.poll() is None, open(log.name).read()
            return len(psutil.Process(p.pid).children()) == workers and get(port, "/whoami/")[0] == 200

        wait_for(up, timeout=30, interval=0.2, what="gunicorn workers")
        return p, port

    yield start
    for p, log in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(p.pid).children():
                    child.kill()
                p.kill()
                p.wait(10)
        log.close()


def server_sessions(vendor: str, url: str) -> set[int]:
    """Client ports of the sessions the database server itself lists."""
    import sqlalchemy as sa

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            if vendor == "mysql":
                hosts = c.exec_driver_sql("SELECT host FROM information_schema.processlist").scalars()
                return {int(h.rsplit(":", 1)[1]) for h in hosts if h and ":" in h}
            ports = c.exec_driver_sql("SELECT client_port FROM pg_stat_activity WHERE client_port IS NOT NULL").scalars()
            return {int(p) for p in ports}
    finally:
        eng.dispose()


def local_ports(pids: list[int], db_port: int) -> set[int]:
    ports = set()
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == db_port and c.status == psutil.CONN_ESTABLISHED:
                ports.add(c.laddr.port)
    return ports


@pytest.mark.slow
@pytest.mark.parametrize("vendor", ["mysql", "postgresql"])
def test_four_workers_under_load_each_pool_their_own_and_the_agent_counts_right(request, agent, gunicorn, vendor):
    url = request.getfixturevalue(f"{vendor}_url")
    program = f"example-{vendor}-{os.getpid()}"
    arbiter, port = gunicorn(url.replace("+psycopg2", "").replace("+pymysql", ""), agent.socket, program)
    workers = [c.pid for c in psutil.Process(arbiter.pid).children()]

    def one(i: int):
        try:
            status, body = get(port, "/whoami/" if i % 3 else "/")
            if status != 200:
                return ("error", status)
            return json.loads(body) if body.startswith(b"{") else ("ok", None)
        except Exception as err:
            return ("error", repr(err))

    with ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, range(REQUESTS)))
    errors = [r for r in results if isinstance(r, tuple) and r[0] == "error"]
    assert errors == []
    answers = [r for r in results if isinstance(r, dict)]
    by_pid: dict[int, set[int]] = {}
    for a in answers:
        by_pid.setdefault(a["pid"], set()).add(a["session"])
    assert set(by_pid) <= set(workers) and len(by_pid) >= 2
    # A pool per worker: no server session is ever shared by two workers.
    sessions = [s for ss in by_pid.values() for s in ss]
    assert len(sessions) == len(set(sessions))
    # Pooled: far fewer sessions than requests (pool_size 5 per worker).
    assert len(sessions) <= 4 * 10

    pids = [arbiter.pid] + workers

    def agent_count(state):
        procs = [p for p in state["processes"] if p["program"] == program and p["pid"] in pids]
        return sum(pool["gauges"]["connections"] for p in procs for pool in p["pools"]), len(procs)

    def equal(state):
        ours = local_ports(pids, DB_PORTS[vendor])
        server = ours & server_sessions(vendor, url)
        count, nprocs = agent_count(state)
        return nprocs == len(pids) and count == len(server) == len(ours) > 0

    state = agent.wait_state(equal, timeout=15, what="agent count == server count")
    count, _ = agent_count(state)
    assert count >= len(by_pid)
