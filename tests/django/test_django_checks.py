"""Bad pool settings fail ``manage.py check`` with their codes."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from cm_helpers import EXAMPLE

from django_connmon.checks import check_settings

# Checks only read DATABASES; no connection is made under these overrides.
pytestmark = pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning")


def _db(**pool):
    return {"default": {"ENGINE": "django_connmon.backends.sqlite3", "NAME": "x.db", "POOL": pool}}


@pytest.mark.parametrize(
    "pool, code",
    [
        ({"pool_sise": 3}, "E001"),
        ({"pool_size": -1}, "E002"),
        ({"pool_size": "5"}, "E002"),
        ({"max_overflow": -2}, "E003"),
        ({"timeout": 0}, "E004"),
        ({"timeout": float("nan")}, "E004"),
        ({"recycle": 0}, "E005"),
        ({"pre_ping": "yes"}, "E006"),
        ({"use_lifo": 1}, "E006"),
        ({"pool_class": "StaticPool"}, "E007"),
        ({"reset_session": "no"}, "E006"),
    ],
)
def test_each_bad_pool_option_has_its_code(pool, code):
    with override_settings(DATABASES=_db(**pool)):
        ids = [m.id for m in check_settings()]
    assert ids == [f"django_connmon.{code}"]


def test_good_settings_pass():
    with override_settings(DATABASES=_db(pool_size=2, max_overflow=0, timeout=1.5, recycle=-1, pre_ping=True)):
        assert check_settings() == []


def test_mysqlpool_settings_are_honoured_and_checked():
    from django_connmon.options import parse_pool_options

    sd = {"ENGINE": "django_connmon.backends.mysql", "POOL": {"max_overflow": 1}}
    o = parse_pool_options("default", sd, vendor="mysql", mysqlpool_backend="QueuePool",
                           mysqlpool_arguments={"pool_size": 7, "max_overflow": 3, "use_threadlocal": False})
    assert (o.pool_size, o.max_overflow) == (7, 1)  # POOL wins over MYSQLPOOL_ARGUMENTS
    assert [p.id for p in o.problems] == ["django_connmon.W002"]
    dbs = {"default": sd}
    with override_settings(DATABASES=dbs, MYSQLPOOL_BACKEND="SingletonPool", MYSQLPOOL_ARGUMENTS={"size": 1}):
        assert sorted(m.id for m in check_settings()) == ["django_connmon.E007", "django_connmon.E008"]


def test_other_codes():
    dbs = {"default": {"ENGINE": "django_connmon.backends.postgresql", "NAME": "x",
                       "OPTIONS": {"pool": True}, "CONN_MAX_AGE": 60}}
    with override_settings(DATABASES=dbs, CONNMON_INTERVAL=-1, CONNMON_ADDR="nohost"):
        ids = sorted(m.id for m in check_settings())
    assert ids == ["django_connmon.E009", "django_connmon.E009", "django_connmon.E010", "django_connmon.W001"]


def test_check_command_fails_with_the_codes():
    with override_settings(DATABASES=_db(pool_size=-1, timeout="soon")):
        with pytest.raises(SystemCheckError) as info:
            call_command("check")
    assert "django_connmon.E002" in str(info.value) and "django_connmon.E004" in str(info.value)


def test_manage_py_check_of_example_project_fails_on_a_bad_pool_size(short_tmp):
    env = dict(os.environ, EXAMPLE_DATABASE_URL=f"sqlite:///{short_tmp}/x.db", EXAMPLE_POOL_SIZE="-3",
               DJANGO_SETTINGS_MODULE="example.settings")
    p = subprocess.run([sys.executable, "manage.py", "check"], cwd=EXAMPLE, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "django_connmon.E002" in p.stderr and "pool_size" in p.stderr


def test_secret_file_setting_is_checked(short_tmp):
    good = os.path.join(short_tmp, "secret")
    with open(good, "wb") as f:
        f.write(b"s3cret-of-the-cluster-0123456789")
    os.chmod(good, 0o600)
    with override_settings(CONNMON_SECRET_FILE=good):
        assert check_settings() == []
    short = os.path.join(short_tmp, "short")
    with open(short, "wb") as f:
        f.write(b"tiny")
    os.chmod(short, 0o600)
    for value, says in ((7, "must be a non-empty string"), ("", "must be a non-empty string"),
                        (os.path.join(short_tmp, "missing"), "cannot read it"),
                        (short, "at least 16")):
        with override_settings(CONNMON_SECRET_FILE=value):
            msgs = check_settings()
        assert [m.id for m in msgs] == ["django_connmon.E009"] and says in msgs[0].msg, msgs
    os.chmod(good, 0o644)
    with override_settings(CONNMON_SECRET_FILE=good):
        msgs = check_settings()
    assert [m.id for m in msgs] == ["django_connmon.E009"] and "chmod 600" in msgs[0].msg
