"""Helpers for the end-to-end tests: real reporting processes using the
``?plugin=connmon`` URL, and the database server's own view of them."""
from __future__ import annotations

import json
import subprocess
from typing import Any
from urllib.parse import quote

import psutil
import sqlalchemy as sa

# A reporting process: opens ``hold`` connections through an engine with the
# plugin on, returns ``release`` of them, prints its state as JSON and waits
# for commands on stdin ("quit", or "fork N" to fork N children that each hold
# one connection of their own).
HOLDER_SCRIPT = r"""
import ctypes, json, os, sys, time
import sqlalchemy as sa

url, hold, release = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
engine = sa.create_engine(url, pool_size=5, max_overflow=5)

def server_id(conn):
    name = conn.dialect.name
    if name == "mysql":
        return conn.exec_driver_sql("SELECT CONNECTION_ID()").scalar()
    if name == "postgresql":
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    return None

conns = [engine.connect() for _ in range(hold)]
ids = [server_id(c) for c in conns]
for c in conns[:release]:
    c.close()
held = conns[release:]
print(json.dumps({"pid": os.getpid(), "ids": ids}), flush=True)

children = []
for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    if cmd[0] == "check":
        # the parent's connections still work after its children ran
        print(json.dumps({"check": [c.exec_driver_sql("SELECT 1").scalar() for c in held]}), flush=True)
    if cmd[0] == "fork":
        for _ in range(int(cmd[1])):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                # die with the parent, whatever kills it
                ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
                engine.dispose(close=False)   # the child's own pool
                c = engine.connect()
                os.write(w, (json.dumps({"pid": os.getpid(), "ids": [server_id(c)]}) + "\n").encode())
                os.close(w)
                time.sleep(3600)
                os._exit(0)
            os.close(w)
            with os.fdopen(r) as f:
                print(f.readline().strip(), flush=True)
            children.append(pid)
for pid in children:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


def plugin_url(base: str, socket_path: str, program: str, interval: float = 0.2) -> str:
    sep = "&" if "?" in base else "?"
    return (
        f"{base}{sep}plugin=connmon&connmon_socket={quote(socket_path, safe='')}"
        f"&connmon_program_name={program}&connmon_interval={interval}"
    )


def spawn_holder(scripts: Any, url: str, hold: int, release: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    p = scripts.spawn(HOLDER_SCRIPT, url, str(hold), str(release), name="holder")
    line = p.stdout.readline()
    if not line:
        raise AssertionError(f"holder process failed: {p.stderr.read()}")
    return p, json.loads(line)


def send(p: subprocess.Popen[str], command: str) -> None:
    assert p.stdin is not None
    p.stdin.write(command + "\n")
    p.stdin.flush()


def process_rows(state: dict[str, Any], pids: set[int]) -> dict[int, dict[str, Any]]:
    return {p["pid"]: p for p in state["processes"] if p["pid"] in pids}


def server_connection_count(url: str, pids: set[int]) -> int:
    """Connections the server itself sees from ``pids``, matched by client port."""
    ports = set()
    server_port = sa.engine.make_url(url).port or (3306 if url.startswith("mysql") else 5432)
    for pid in pids:
        for c in psutil.Process(pid).net_connections(kind="tcp"):
            if c.raddr and c.raddr.port == server_port and c.status == psutil.CONN_ESTABLISHED:
                ports.add(c.laddr.port)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "mysql":
                hosts = conn.exec_driver_sql("SELECT host FROM information_schema.processlist").scalars()
                server_ports = {int(h.rsplit(":", 1)[1]) for h in hosts if h and ":" in h}
            else:
                server_ports = set(
                    conn.exec_driver_sql(
                        "SELECT client_port FROM pg_stat_activity WHERE client_port IS NOT NULL"
                    ).scalars()
                )
    finally:
        engine.dispose()
    return len(ports & server_ports)
