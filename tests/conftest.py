"""Shared fixtures: real databases, a real agent process, real reporting
processes. Every resource registers its own teardown where it is made."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, Callable

import pytest

REQUIRE_DBS = os.environ.get("CONNMON_REQUIRE_DBS") == "1"
MYSQL_URL = os.environ.get("CONNMON_TEST_MYSQL_URL")
POSTGRESQL_URL = os.environ.get("CONNMON_TEST_POSTGRESQL_URL")


def _server_url(env_url: str | None, name: str) -> str:
    if not env_url:
        msg = f"{name} not configured (set CONNMON_TEST_{name.upper()}_URL)"
        if REQUIRE_DBS:
            pytest.fail(msg + " and CONNMON_REQUIRE_DBS=1")
        pytest.skip(msg)
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(env_url, poolclass=sa.pool.NullPool)
        with eng.connect() as conn:
            conn.exec_driver_sql("select 1")
        eng.dispose()
    except Exception as err:  # the server is down or the URL is wrong
        if REQUIRE_DBS:
            pytest.fail(f"{name} at {env_url} does not answer: {err}")
        pytest.skip(f"{name} does not answer: {err}")
    return env_url


@pytest.fixture
def mysql_url() -> str:
    return _server_url(MYSQL_URL, "mysql")


@pytest.fixture
def postgresql_url() -> str:
    return _server_url(POSTGRESQL_URL, "postgresql")


@pytest.fixture
def short_tmp() -> Any:
    """A short private directory (Unix socket paths are limited to 107 bytes)."""
    path = tempfile.mkdtemp(prefix="cm", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["sqlite", "mysql", "postgresql"])
def db_url(request: pytest.FixtureRequest, short_tmp: str) -> str:
    """A database URL for each backend: SQLite always, the servers when configured."""
    if request.param == "sqlite":
        return f"sqlite:///{short_tmp}/test.db"
    return request.getfixturevalue(f"{request.param}_url")


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # keep polling; report the last error
            last_exc = err
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last_exc!r}" if last_exc else ""))
        time.sleep(interval)


class AgentProcess:
    """A real ``connmon-agent start`` subprocess on a private socket."""

    def __init__(self, directory: str, extra_args: list[str] | None = None) -> None:
        self.dir = directory
        self.socket = os.path.join(directory, "run", "agent.sock")
        self.log = os.path.join(directory, "agent.log")
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self._logf: Any = None

    def start(self, timeout: float = 10.0) -> "AgentProcess":
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "connmon_agent", "start", "--socket", self.socket, *self.extra_args],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout, what=f"agent socket {self.socket}")
        return self

    def _ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"agent exited with {self.proc.returncode}: {self.read_log()}")
        try:
            self.state(timeout=1.0)
            return True
        except Exception:
            return False

    def read_log(self) -> str:
        with open(self.log, errors="replace") as f:
            return f.read()

    def state(self, timeout: float = 5.0) -> dict[str, Any]:
        from connmon_agent.query import fetch_state

        return fetch_state(self.socket, timeout=timeout)

    def wait_state(self, predicate: Callable[[dict[str, Any]], Any], timeout: float = 5.0, what: str = "agent state") -> dict[str, Any]:
        holder: dict[str, Any] = {}

        def check() -> Any:
            holder["s"] = self.state()
            return predicate(holder["s"])

        try:
            wait_for(check, timeout, interval=0.1, what=what)
        except AssertionError as err:
            raise AssertionError(f"{err}; last state: {holder.get('s')!r}"[:4000]) from None
        return holder["s"]

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def stop(self, timeout: float = 10.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError("agent did not stop on SIGTERM")
        self._close_log()
        return self.proc.returncode

    def _close_log(self) -> None:
        if self._logf is not None:
            self._logf.close()
            self._logf = None


@pytest.fixture
def agent_factory(short_tmp: str) -> Any:
    """Make (and always clean up) agent processes; ``agent_factory()`` starts one."""
    made: list[AgentProcess] = []

    def make(extra_args: list[str] | None = None, start: bool = True, directory: str | None = None) -> AgentProcess:
        d = directory or tempfile.mkdtemp(prefix="a", dir=short_tmp)
        a = AgentProcess(d, extra_args)
        made.append(a)
        return a.start() if start else a

    yield make
    for a in made:
        if a.proc is not None and a.proc.poll() is None:
            a.proc.send_signal(signal.SIGCONT)
        a.kill()


@pytest.fixture
def agent(agent_factory: Any) -> AgentProcess:
    """One running agent on a private socket."""
    return agent_factory()


class Scripts:
    """Run Python snippets as real subprocesses; every one is ended at teardown."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, code: str, *args: str, env: dict[str, str] | None = None, name: str = "script") -> subprocess.Popen[str]:
        path = os.path.join(self.dir, f"{name}_{len(self.procs)}.py")
        with open(path, "w") as f:
            f.write(textwrap.dedent(code))
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.Popen(
            [sys.executable, path, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=full_env,
        )
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            for stream in (p.stdin, p.stdout, p.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def scripts(short_tmp: str) -> Any:
    s = Scripts(short_tmp)
    yield s
    s.cleanup()
