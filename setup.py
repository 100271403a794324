"""Packaging for connmon: the SQLAlchemy plugin, the per-host agent, the
console and the Django pooled backends."""
from __future__ import annotations

import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))

with open(os.path.join(HERE, "connmon_agent", "__init__.py")) as f:
    VERSION = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

with open(os.path.join(HERE, "README.rst")) as f:
    LONG_DESCRIPTION = f.read()

# The driver-suffix URL form of the original connmon:
# ``mysql+pymysql_connmon://...`` is the real dialect with the plugin on.
DIALECTS = [
    ("mysql.pymysql_connmon", "mysql", "pymysql"),
    ("mysql.mysqldb_connmon", "mysql", "mysqldb"),
    ("postgresql.psycopg2_connmon", "postgresql", "psycopg2"),
    ("postgresql.psycopg_connmon", "postgresql", "psycopg"),
    ("sqlite.pysqlite_connmon", "sqlite", "pysqlite"),
]

TEST_REQUIRES = [
    "pytest>=8",
    "hypothesis>=6.100",
    "pymysql>=1.1",
    "psycopg2-binary>=2.9",
    "psycopg[binary]>=3.1",
    "pyte>=0.8",
    "gunicorn>=22",
    "celery>=5.3",
]

setup(
    name="connmon",
    version=VERSION,
    description="top for database connection pools: who holds which "
    "connections, on every process of every host",
    long_description=LONG_DESCRIPTION,
    long_description_content_type="text/x-rst",
    license="MIT",
    python_requires=">=3.11",
    packages=find_packages(include=["connmon_agent*", "django_connmon*"]),
    install_requires=[
        "SQLAlchemy>=2.0,<2.2",
        "psutil>=5.9",
        "prometheus_client>=0.17",
        # The agent's event loop and JSON decoder in C (agent/loops.py,
        # protocol.use_fast_json): a quarter off its CPU per report. Never
        # imported inside applications; the agent falls back to asyncio and
        # the standard library where they are missing.
        "uvloop>=0.19; sys_platform != 'win32' and platform_python_implementation == 'CPython'",
        "orjson>=3.9; platform_python_implementation == 'CPython'",
    ],
    extras_require={
        "django": ["Django>=5.2"],
        "console": ["urwid>=2.6"],
        # the agent's event loop in C (agent/loops.py); optional
        "celery": ["celery>=5.3"],
        "mysql": ["pymysql>=1.1"],
        "postgresql": ["psycopg2-binary>=2.9"],
        "test": TEST_REQUIRES,
        "all": ["Django>=5.2", "urwid>=2.6"] + TEST_REQUIRES,
    },
    entry_points={
        "console_scripts": ["connmon-agent = connmon_agent.cli:main"],
        "sqlalchemy.plugins": ["connmon = connmon_agent.plugin:ConnmonPlugin"],
        "sqlalchemy.dialects": [
            f"{name} = connmon_agent.dialects:{base}_{driver}"
            for name, base, driver in DIALECTS
        ],
    },
    classifiers=[
        "Development Status :: 4 - Beta",
        "Framework :: Django",
        "Framework :: Django :: 5.2",
        "Intended Audience :: System Administrators",
        "License :: OSI Approved :: MIT License",
        "Programming Language :: Python :: 3",
        "Topic :: Database",
        "Topic :: System :: Monitoring",
    ],
)
