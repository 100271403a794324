"""``?plugin=connmon`` and the driver-suffix dialects: parameters parsed,
validated and removed before the driver sees them."""
from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest
import sqlalchemy as sa

from client_helpers import clean_client, fake_agent, wait_until  # noqa: F401  (fixtures)
from connmon_agent.client import pools
from connmon_agent.client.config import default_program_name
from connmon_agent.errors import ConfigError

pytestmark = pytest.mark.usefixtures("clean_client")


def collector_of(engine: sa.Engine) -> object:
    return pools._by_target[engine]


def test_plugin_reports_under_the_given_name(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine = sa.create_engine(
        f"sqlite:///{short_tmp}/t.db?plugin=connmon&connmon_program_name=nova-api"
        f"&connmon_socket={agent.path}&connmon_interval=0.2"
    )
    assert not any(k.startswith("connmon_") for k in engine.url.query)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    wait_until(lambda: agent.reports, what="a report")
    assert agent.hellos[0]["program"] == "nova-api" and agent.hellos[0]["interval"] == 0.2
    assert agent.reports[0]["pools"][0]["target"] == f"sqlite+pysqlite:///{short_tmp}/t.db"


def test_defaults_and_cluster_settings_are_kept(short_tmp: str) -> None:
    engine = sa.create_engine(
        f"sqlite:///{short_tmp}/t.db?plugin=connmon&connmon_service=default"
        f"&connmon_addr=192.168.1.205:5800&connmon_socket={short_tmp}/none.sock"
    )
    c = collector_of(engine)
    assert c.config.program_name == default_program_name() == os.path.basename(sys.argv[0])
    assert c.config.interval == 1.0 and c.config.where is False
    assert c.config.service == "default" and c.config.addr == ("192.168.1.205", 5800)


@pytest.mark.parametrize(
    "query, named",
    [
        ("connmon_foo=1", "connmon_foo"),
        ("connmon_interval=0", "connmon_interval"),
        ("connmon_interval=-1", "connmon_interval"),
        ("connmon_interval=nan", "connmon_interval"),
        ("connmon_interval=inf", "connmon_interval"),
        ("connmon_interval=abc", "connmon_interval"),
        ("connmon_interval=1&connmon_interval=2", "connmon_interval"),
        ("connmon_addr=db.example", "connmon_addr"),
        ("connmon_addr=db.example:0", "connmon_addr"),
        ("connmon_addr=db.example:http", "connmon_addr"),
        ("connmon_service=two words", "connmon_service"),
        ("connmon_where=maybe", "connmon_where"),
        ("connmon_socket=" + "x" * 200, "connmon_socket"),
    ],
)
@pytest.mark.parametrize("form", ["plugin", "dialect"])
def test_bad_parameters_fail_at_create_engine_naming_the_parameter(form: str, query: str, named: str, short_tmp: str) -> None:
    if form == "plugin":
        url = f"sqlite:///{short_tmp}/t.db?plugin=connmon&{query}"
    else:
        url = f"sqlite+pysqlite_connmon:///{short_tmp}/t.db?{query}"
    with pytest.raises(ConfigError) as info:
        sa.create_engine(url)
    assert named in str(info.value)


@pytest.mark.parametrize("name", ["connmon_interval", "connmon_program_name", "connmon_socket"])
@pytest.mark.parametrize("form", ["plugin", "dialect"])
def test_empty_parameter_is_an_error(form: str, name: str, short_tmp: str) -> None:
    # SQLAlchemy drops blank values when it parses a URL string; a URL
    # object (or make_url(..., keep_blank_values=True)) keeps them
    driver = "sqlite" if form == "plugin" else "sqlite+pysqlite_connmon"
    query = {name: "  "} | ({"plugin": "connmon"} if form == "plugin" else {})
    url = sa.engine.URL.create(driver, database=f"{short_tmp}/t.db", query=query)
    with pytest.raises(ConfigError, match=f"{name}.* empty"):
        sa.create_engine(url)


def test_sqlite_dialect_form(fake_agent, short_tmp: str) -> None:
    agent = fake_agent()
    engine = sa.create_engine(
        f"sqlite+pysqlite_connmon:///{short_tmp}/t.db?connmon_socket={agent.path}"
        "&connmon_interval=0.2&connmon_program_name=suffix"
    )
    # the driver never sees our parameters
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    assert not any("connmon" in str(a) for a in cargs) and not any(k.startswith("connmon") for k in cparams)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    c = collector_of(engine)
    assert c.target == f"sqlite+pysqlite:///{short_tmp}/t.db"
    wait_until(lambda: agent.reports, what="a report")
    assert agent.hellos[0]["program"] == "suffix"


@pytest.mark.parametrize("server, suffix", [
    ("mysql", "mysql+pymysql_connmon"),
    ("postgresql", "postgresql+psycopg2_connmon"),
    ("postgresql", "postgresql+psycopg_connmon"),
])
def test_server_dialect_forms(server: str, suffix: str, request: pytest.FixtureRequest, short_tmp: str) -> None:
    url = sa.engine.make_url(request.getfixturevalue(f"{server}_url"))
    url = url.set(drivername=suffix).update_query_dict(
        {"connmon_socket": f"{short_tmp}/none.sock", "connmon_interval": "0.5", "connmon_program_name": "srv"}
    )
    engine = sa.create_engine(url)
    # connecting proves the driver did not get connmon_* keyword arguments
    with engine.connect() as conn:
        assert conn.exec_driver_sql("select 1").scalar() == 1
    c = collector_of(engine)
    assert c.config.program_name == "srv" and c.config.interval == 0.5
    assert c.target.startswith(suffix.replace("_connmon", "") + "://")
    assert c.snapshot()["counters"]["checkouts"] == 1
    engine.dispose()


def test_mysqldb_dialect_form_resolves_without_the_driver(short_tmp: str) -> None:
    from connmon_agent import dialects

    cls = dialects.mysql_mysqldb
    assert cls.__name__ == "MySQLDialect_mysqldb_connmon" and cls.driver == "mysqldb"
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="MySQLdb"):
            sa.create_engine(f"mysql+mysqldb_connmon://u@h/db?connmon_socket={short_tmp}/s.sock")
    with pytest.raises(ConfigError, match="connmon_bogus"):
        sa.create_engine("mysql+mysqldb_connmon://u@h/db?connmon_bogus=1")


def test_entry_points_resolve() -> None:
    eps = {ep.name: ep for ep in entry_points(group="sqlalchemy.dialects") if ep.name.endswith("_connmon")}
    assert set(eps) == {
        "mysql.pymysql_connmon", "mysql.mysqldb_connmon", "postgresql.psycopg2_connmon",
        "postgresql.psycopg_connmon", "sqlite.pysqlite_connmon",
    }
    for ep in eps.values():
        assert ep.load().__name__.endswith("_connmon")
    (plugin,) = [ep for ep in entry_points(group="sqlalchemy.plugins") if ep.name == "connmon"]
    assert plugin.load().__name__ == "ConnmonPlugin"


def test_importing_dialects_imports_no_driver() -> None:
    code = (
        "import sys, connmon_agent.dialects, connmon_agent.plugin, connmon_agent.client\n"
        "bad = [m for m in ('pymysql', 'MySQLdb', 'psycopg', 'psycopg2', 'django', 'urwid', 'psutil') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_reporting_application_never_imports_the_agents_c_helpers(fake_agent, short_tmp: str) -> None:
    """uvloop and orjson are the agent's; an application that reports (its
    engine connected, a report sent and answered) loads neither."""
    agent = fake_agent()
    code = (
        "import sys, time, sqlalchemy as sa\n"
        f"e = sa.create_engine('sqlite:///{short_tmp}/g.db?plugin=connmon&connmon_socket={agent.path}&connmon_interval=0.1')\n"
        "e.connect().close()\n"
        "time.sleep(1.0)\n"
        "bad = [m for m in ('uvloop', 'orjson') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert agent.reports  # it did report
