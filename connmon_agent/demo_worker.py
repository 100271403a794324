"""One worker process of ``connmon-agent demo``.

Each role is a small, realistic way an application uses a connection pool,
through the ``?plugin=connmon`` URL exactly as a user would write it::

    python -m connmon_agent.demo_worker ROLE DB_PATH SOCKET
"""
from __future__ import annotations

import os
import random
import sys
import threading
import time
from typing import Callable
from urllib.parse import quote

import sqlalchemy as sa

from .client import holder

INTERVAL = 0.5


def make_engine(db_path: str, socket_path: str, program: str, **kw: object) -> sa.Engine:
    url = (
        f"sqlite:///{db_path}?plugin=connmon&connmon_program_name={program}"
        f"&connmon_socket={quote(socket_path, safe='')}&connmon_interval={INTERVAL}"
    )
    kw.setdefault("poolclass", sa.pool.QueuePool)
    kw.setdefault("connect_args", {"timeout": 30, "check_same_thread": False})
    return sa.create_engine(url, **kw)


def setup_schema(db_path: str) -> None:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.exec_driver_sql(
            "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)"
        )
        if conn.exec_driver_sql("SELECT count(*) FROM items").scalar() == 0:
            conn.exec_driver_sql(
                "INSERT INTO items (name, qty) VALUES "
                + ",".join(f"('item{i}', {i})" for i in range(200))
            )
    engine.dispose()


def short_query(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT name, qty FROM items WHERE id = ?", (random.randint(1, 200),)).all()
        time.sleep(random.uniform(0.005, 0.05))


def update_query(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE items SET qty = qty + 1 WHERE id = ?", (random.randint(1, 200),))


def web(db: str, sock: str) -> None:
    """A web app: 6 threads serving requests, mostly short reads."""
    engine = make_engine(db, sock, "demo-web", pool_size=4, max_overflow=4)
    routes = ["GET /items", "GET /items/<id>", "POST /items/<id>", "GET /search"]

    def serve() -> None:
        while True:
            route = random.choice(routes)
            with holder(route, kind="request"):
                (update_query if route.startswith("POST") else short_query)(engine)
            time.sleep(random.uniform(0.02, 0.3))

    run_threads(serve, 6, "worker")


def reports(db: str, sock: str) -> None:
    """A reporting job that holds a connection for many seconds at a time."""
    engine = make_engine(db, sock, "demo-reports", pool_size=2, max_overflow=0)
    while True:
        with holder("nightly_report", kind="task"):
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT sum(qty) FROM items").scalar()
                time.sleep(random.uniform(6, 12))
        time.sleep(random.uniform(1, 3))


def burst(db: str, sock: str) -> None:
    """Quiet, then 12 threads at once against a pool of 3 + 2 overflow."""
    engine = make_engine(db, sock, "demo-burst", pool_size=3, max_overflow=2, pool_timeout=2)

    def one() -> None:
        try:
            with holder("import_batch", kind="task"), engine.connect() as conn:
                conn.exec_driver_sql("SELECT count(*) FROM items").scalar()
                time.sleep(random.uniform(0.5, 1.5))
        except sa.exc.TimeoutError:
            pass  # counted by connmon as a checkout timeout

    while True:
        time.sleep(random.uniform(4, 8))
        threads = [threading.Thread(target=one, name=f"burst-{i}") for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def cron(db: str, sock: str) -> None:
    """A short-lived process: does some work, then exits (the demo restarts it)."""
    engine = make_engine(db, sock, "demo-cron", pool_size=1)
    end = time.monotonic() + random.uniform(4, 7)
    while time.monotonic() < end:
        update_query(engine)
        time.sleep(0.2)
    engine.dispose()


def forker(db: str, sock: str) -> None:
    """A parent that keeps a connection and forks children with pools of their own."""
    engine = make_engine(db, sock, "demo-forker", pool_size=2)
    parent_conn = engine.connect()  # held across every fork: the child must not touch it
    while True:
        pid = os.fork()
        if pid == 0:
            try:
                engine.dispose(close=False)  # the child's own, empty pool
                end = time.monotonic() + random.uniform(3, 6)
                while time.monotonic() < end:
                    short_query(engine)
                    time.sleep(0.1)
            finally:
                os._exit(0)
        parent_conn.exec_driver_sql("SELECT 1").scalar()
        os.waitpid(pid, 0)
        time.sleep(1)


def run_threads(target: Callable[[], None], n: int, name: str) -> None:
    threads = [threading.Thread(target=target, name=f"{name}-{i}", daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    while True:
        time.sleep(3600)


ROLES: dict[str, Callable[[str, str], None]] = {
    "web": web,
    "reports": reports,
    "burst": burst,
    "cron": cron,
    "forker": forker,
}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "setup":
        setup_schema(argv[1])
        return 0
    if len(argv) != 3 or argv[0] not in ROLES:
        print(f"usage: demo_worker {{{'|'.join(ROLES)}}} DB_PATH SOCKET", file=sys.stderr)
        return 2
    try:
        ROLES[argv[0]](argv[1], argv[2])
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
