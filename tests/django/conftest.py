"""Django for the django_connmon tests: plain DJANGO_SETTINGS_MODULE and
django.setup(), real test databases on every configured server."""
from __future__ import annotations

import os
import sys

import pytest

# This file and tests/conftest.py are both imported as the module
# "conftest" (no __init__.py); whichever came last is what
# ``from conftest import wait_for`` in other test files finds. Carry the
# shared helpers over so those imports keep working.
_ROOT_CONFTEST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "conftest.py")
_shared = next(
    (m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == _ROOT_CONFTEST), None
)
if _shared is None:  # pytest took it out of sys.modules: load a twin
    import importlib.util

    _spec = importlib.util.spec_from_file_location("_connmon_shared_conftest", _ROOT_CONFTEST)
    _shared = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_shared)
if _shared is not None:
    for _name, _value in vars(_shared).items():
        if not _name.startswith("__") and "Fixture" not in type(_value).__name__ and _name not in globals():
            globals()[_name] = _value

os.environ["DJANGO_SETTINGS_MODULE"] = "cm_settings"

import django  # noqa: E402

django.setup()


def _alias_for(vendor: str) -> str:
    return {"sqlite": "default", "mysql": "mysql", "postgresql": "postgresql"}[vendor]


@pytest.fixture(scope="session")
def test_databases():
    """Create each configured alias's test database once; drop them at the end."""
    from django.db import connections

    made = {}
    yield made
    for alias, old_name in made.items():
        connections[alias].creation.destroy_test_db(old_name, verbosity=0)


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def alias(request, test_databases):
    """A pooled alias with its test database, for each backend."""
    from django.db import connections

    vendor = request.param
    if vendor != "sqlite":
        request.getfixturevalue(f"{vendor}_url")  # skips/fails as configured
    name = _alias_for(vendor)
    if name not in test_databases:
        conn = connections[name]
        old = conn.settings_dict["NAME"]
        conn.creation.create_test_db(verbosity=0, autoclobber=True)
        test_databases[name] = old
    yield name
    connections[name].close()
