"""Settings of example_project.

The database comes from ``EXAMPLE_DATABASE_URL``:
``sqlite:///path/to/file.db`` (the default: ``example.db`` beside
manage.py), ``mysql://root@127.0.0.1:3306/test`` (MariaDB/MySQL) or
``postgresql://postgres@127.0.0.1:5432/test``. Pool options come from
``EXAMPLE_POOL_SIZE`` / ``EXAMPLE_MAX_OVERFLOW`` /
``EXAMPLE_RESET_SESSION``; ``EXAMPLE_ENGINE=django``
switches to Django's own backend (for the benchmark), with
``EXAMPLE_CONN_MAX_AGE``.
"""
from __future__ import annotations

import os
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECRET_KEY = os.environ.get("EXAMPLE_SECRET_KEY", "example-project-not-secret")
DEBUG = os.environ.get("EXAMPLE_DEBUG") == "1"
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_connmon", "example"]
MIDDLEWARE = ["django_connmon.middleware.ConnmonMiddleware"]

# What connmon-agent status shows for these processes.
CONNMON_PROGRAM_NAME = os.environ.get("EXAMPLE_PROGRAM_NAME", "example_project")
CONNMON_REPORT = os.environ.get("CONNMON_REPORT", "1") != "0"
if os.environ.get("CONNMON_INTERVAL"):
    CONNMON_INTERVAL = float(os.environ["CONNMON_INTERVAL"])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_connmon": {"handlers": ["console"], "level": "WARNING"}},
}

_ENGINES = {
    "sqlite": "sqlite3",
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
}


def database_from_url(url: str) -> dict:
    """One DATABASES entry from a URL (the driver suffix is ignored)."""
    u = urlsplit(url)
    scheme = u.scheme.split("+")[0]
    backend = _ENGINES[scheme]
    pooled = os.environ.get("EXAMPLE_ENGINE", "connmon") != "django"
    engine = f"django_connmon.backends.{backend}" if pooled else f"django.db.backends.{backend}"
    if backend == "sqlite3":
        name = u.path[1:] if u.path.startswith("/") else u.path
        db = {"ENGINE": engine, "NAME": name or os.path.join(HERE, "example.db")}
    else:
        db = {
            "ENGINE": engine,
            "NAME": u.path.lstrip("/"),
            "USER": u.username or "",
            "PASSWORD": u.password or "",
            "HOST": u.hostname or "",
            "PORT": str(u.port or ""),
        }
    if pooled:
        db["POOL"] = {
            "pool_size": int(os.environ.get("EXAMPLE_POOL_SIZE", "5")),
            "max_overflow": int(os.environ.get("EXAMPLE_MAX_OVERFLOW", "5")),
            "timeout": 10,
            "reset_session": os.environ.get("EXAMPLE_RESET_SESSION", "1") == "1",
        }
    else:
        db["CONN_MAX_AGE"] = int(os.environ.get("EXAMPLE_CONN_MAX_AGE", "0"))
        if backend == "mysql":  # the same driver as the pooled backend uses
            try:
                import MySQLdb  # noqa: F401
            except ImportError:
                import pymysql

                pymysql.install_as_MySQLdb()
    return db


DATABASES = {"default": database_from_url(os.environ.get("EXAMPLE_DATABASE_URL", "sqlite:///"))}
