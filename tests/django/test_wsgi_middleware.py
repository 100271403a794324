"""connmon_agent.wsgi.ConnmonMiddleware on a plain WSGI app with a
SQLAlchemy engine (no Django involved): names checkouts by request and
reports a request that leaves one checked out."""
from __future__ import annotations

import io
import threading

import sqlalchemy as sa

from connmon_agent.wsgi import ConnmonMiddleware


def _call(app, path: str) -> bytes:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "wsgi.input": io.BytesIO()}
    status = []
    result = app(environ, lambda s, h: status.append(s))
    try:
        return b"".join(result)
    finally:
        result.close()


def test_leaked_checkout_is_reported_at_request_end(short_tmp, caplog):
    from connmon_agent.client import instrument

    engine = sa.create_engine(f"sqlite:///{short_tmp}/w.db")
    instrument(engine, program_name="wsgi-test", socket_path=f"{short_tmp}/none.sock")
    kept = []
    seen = []

    def app(environ, start_response):
        start_response("200 OK", [])
        if environ["PATH_INFO"] == "/leak":
            h = environ["connmon.holder"]
            t = threading.Thread(target=h.bind(lambda: kept.append(engine.connect())), name="wsgi-leaker")
            t.start()
            t.join()
        else:
            with engine.connect() as c:
                c.exec_driver_sql("select 1")
        return [b"ok"]

    wrapped = ConnmonMiddleware(app, on_leak=lambda environ, leaks: seen.append(leaks))
    try:
        assert _call(wrapped, "/fine") == b"ok"
        assert seen == []
        assert _call(wrapped, "/leak") == b"ok"
        [[co]] = seen
        assert co.holder == "GET /leak" and co.kind == "request" and co.thread == "wsgi-leaker"
        assert any("still checked out" in r.getMessage() for r in caplog.records)
    finally:
        for c in kept:
            c.close()
        engine.dispose()
