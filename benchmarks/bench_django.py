"""Requests per second of example_project's one-query view under gunicorn:
django_connmon's pooled backend against Django's own backend with
CONN_MAX_AGE=0 (a connection per request) and CONN_MAX_AGE=60 (persistent
per thread), on MariaDB and PostgreSQL; and the connections each opened on
the server for the same load.

    CONNMON_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test \\
    CONNMON_TEST_POSTGRESQL_URL=postgresql://postgres@127.0.0.1:5432/test \\
    python benchmarks/bench_django.py [--seconds 5] [--rounds 3] [--workers 4]

Load comes from ``wrk`` (Debian package ``wrk``) when installed, else from a
Python keep-alive client. The three modes run interleaved, round after
round, so drift of the machine hits all of them alike; the median round is
reported. No agent runs (reporting off): this measures the pool.
"""
from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(os.path.dirname(HERE), "example_project")

MODES = {
    "pooled (django_connmon)": {"EXAMPLE_ENGINE": "connmon"},
    "pooled, reset_session=False": {"EXAMPLE_ENGINE": "connmon", "EXAMPLE_RESET_SESSION": "0"},
    "Django CONN_MAX_AGE=0": {"EXAMPLE_ENGINE": "django", "EXAMPLE_CONN_MAX_AGE": "0"},
    "Django CONN_MAX_AGE=60": {"EXAMPLE_ENGINE": "django", "EXAMPLE_CONN_MAX_AGE": "60"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_connections_opened(vendor: str, url: str) -> int:
    """The server's own cumulative count of sessions opened."""
    import sqlalchemy as sa

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with eng.connect() as c:
            if vendor == "mysql":
                return int(c.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Connections'").one()[1])
            return int(c.exec_driver_sql("SELECT sum(sessions) FROM pg_stat_database").scalar())
    finally:
        eng.dispose()


def start(db_url: str, env_extra: dict, workers: int, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="example.settings", EXAMPLE_DATABASE_URL=db_url,
               EXAMPLE_BIND=f"127.0.0.1:{port}", EXAMPLE_WORKERS=str(workers),
               EXAMPLE_THREADS=str(threads), EXAMPLE_PRELOAD="0", CONNMON_REPORT="0", **env_extra)
    p = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                          "--log-level", "warning"], cwd=EXAMPLE, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/")
            if c.getresponse().status == 200:
                c.close()
                return p, port
        except OSError:
            time.sleep(0.1)
    stop(p)
    raise SystemExit("gunicorn did not start")


def stop(p: subprocess.Popen) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def load_wrk(port: int, seconds: float, concurrency: int) -> tuple[float, int]:
    out = subprocess.run(["wrk", "-t2", f"-c{concurrency}", f"-d{int(round(seconds))}s", f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errs = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(map(int, errs.groups())) if errs else 0)
    return rps, errors


def load_python(port: int, seconds: float, concurrency: int) -> tuple[float, int]:
    done = [0] * concurrency
    errors = [0] * concurrency
    stop_at = time.monotonic() + seconds

    def run(i: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop_at:
            try:
                c.request("GET", "/")
                r = c.getresponse()
                r.read()
                if r.status == 200:
                    done[i] += 1
                else:
                    errors[i] += 1
            except OSError:
                errors[i] += 1
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - t0), sum(errors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    load = load_wrk if shutil.which("wrk") else load_python
    targets = []
    for vendor, var in (("mysql", "CONNMON_TEST_MYSQL_URL"), ("postgresql", "CONNMON_TEST_POSTGRESQL_URL")):
        url = os.environ.get(var)
        if url:
            targets.append((vendor, url))
    if not targets:
        raise SystemExit("set CONNMON_TEST_MYSQL_URL and/or CONNMON_TEST_POSTGRESQL_URL")
    print(f"gunicorn {args.workers} workers x {args.threads} threads, {args.concurrency} concurrent "
          f"clients ({load.__name__[5:]}), {args.seconds:g}s per run, median of {args.rounds} interleaved rounds\n")
    print(f"| database | backend | requests/s | vs CONN_MAX_AGE=0 | server connections opened per 1000 requests | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for vendor, url in targets:
        plain = url.replace("+pymysql", "").replace("+psycopg2", "").replace("+psycopg", "")
        results: dict[str, list[tuple[float, float, int]]] = {m: [] for m in MODES}
        for _ in range(args.rounds):
            for mode, extra in MODES.items():
                p, port = start(plain, extra, args.workers, args.threads)
                try:
                    before = server_connections_opened(vendor, url)
                    rps, errors = load(port, args.seconds, args.concurrency)
                    opened = server_connections_opened(vendor, url) - before - 1  # our own count query
                finally:
                    stop(p)
                per_1000 = 1000.0 * opened / max(rps * args.seconds, 1)
                results[mode].append((rps, per_1000, errors))
        base = statistics.median(r[0] for r in results["Django CONN_MAX_AGE=0"])
        for mode, runs in results.items():
            rps = statistics.median(r[0] for r in runs)
            per_1000 = statistics.median(r[1] for r in runs)
            errors = sum(r[2] for r in runs)
            print(f"| {vendor} | {mode} | {rps:,.0f} | {rps / base:.2f}x | {per_1000:,.1f} | {errors} |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
