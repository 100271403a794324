"""gunicorn configuration of example_project: several workers, each with a
pool of its own (django_connmon resets pools in every forked worker).

    cd example_project && gunicorn -c gunicorn.conf.py

``preload_app`` loads Django in the arbiter before forking, the case where
connections inherited across fork() bite; the pooled backends handle it.
"""
import os

bind = os.environ.get("EXAMPLE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("EXAMPLE_WORKERS", "4"))
threads = int(os.environ.get("EXAMPLE_THREADS", "2"))
wsgi_app = "example.wsgi:application"
preload_app = os.environ.get("EXAMPLE_PRELOAD", "1") == "1"
timeout = 30
graceful_timeout = 5
accesslog = os.environ.get("EXAMPLE_ACCESSLOG") or None
chdir = os.path.dirname(os.path.abspath(__file__))


def when_ready(server):
    """Open (and pool) a connection in the arbiter before the workers fork,
    so every worker inherits one — which it must leave alone."""
    if not preload_app:
        return
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT 1")
    connection.close()
