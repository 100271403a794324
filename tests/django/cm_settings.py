"""Django settings of the django_connmon tests: one alias per backend.

``default`` is a SQLite file database (pooled); ``mysql`` and
``postgresql`` exist when CONNMON_TEST_MYSQL_URL / _POSTGRESQL_URL are set.
"""
from __future__ import annotations

import os
import tempfile
from urllib.parse import urlsplit

BASE_DIR = tempfile.mkdtemp(prefix="cmdj")
SECRET_KEY = "django_connmon-tests"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = "cm_urls"
INSTALLED_APPS = ["django.contrib.contenttypes", "django_connmon", "cmtestapp"]
MIDDLEWARE = ["django_connmon.middleware.ConnmonMiddleware"]
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
CONNMON_PROGRAM_NAME = "cm-tests"
CONNMON_REPORT = False  # tests that want the agent turn it on
LOGGING_CONFIG = None


POOL = {"pool_size": int(os.environ.get("CM_TEST_POOL_SIZE", "3")), "max_overflow": 2, "timeout": 5}


def _server(url: str, engine: str) -> dict:
    u = urlsplit(url)
    return {
        "ENGINE": engine,
        "NAME": u.path.lstrip("/"),
        "USER": u.username or "",
        "PASSWORD": u.password or "",
        "HOST": u.hostname or "",
        "PORT": str(u.port or ""),
        "POOL": POOL,
        "TEST": {"NAME": "test_django_connmon"},
    }


DATABASES = {
    "default": {
        "ENGINE": "django_connmon.backends.sqlite3",
        "NAME": os.path.join(BASE_DIR, "main.db"),
        "POOL": POOL,
        "TEST": {"NAME": os.path.join(BASE_DIR, "test.db")},
    },
}
if os.environ.get("CONNMON_TEST_MYSQL_URL"):
    DATABASES["mysql"] = _server(os.environ["CONNMON_TEST_MYSQL_URL"], "django_connmon.backends.mysql")
if os.environ.get("CONNMON_TEST_POSTGRESQL_URL"):
    DATABASES["postgresql"] = _server(os.environ["CONNMON_TEST_POSTGRESQL_URL"], "django_connmon.backends.postgresql")
