"""The cluster configuration file: the original connmon's format, the
defaults, and one clear error (file, line, problem) for each mistake."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from connmon_agent.agent.federation import ClusterOptions
from connmon_agent.config import DEFAULT_PORT, ENV_CONFIG, is_loopback, load_config, parse_config
from connmon_agent.errors import ConfigError

ORIGINAL = """\
# sample config, listen on 0.0.0.0:5800 and clients
# will connect to 192.168.1.205:5800
[connmon_service_default]
name: default

nodes:
    node1 hostname=192.168.1.205:5800
    node2 hostname=192.168.1.206:5800
    node3 hostname=192.168.1.207:5800 bind=0.0.0.0
"""


def test_the_original_connmon_file_parses() -> None:
    cfg = parse_config(ORIGINAL, "/etc/connmon.cfg")
    svc = cfg.service("default")
    assert [n.name for n in svc.nodes] == ["node1", "node2", "node3"]
    assert svc.nodes[0].address == ("192.168.1.205", 5800)
    assert svc.nodes[0].bind == ("192.168.1.205", 5800)  # no bind=: the address peers use
    assert svc.nodes[2].bind == ("0.0.0.0", 5800)  # bind=ADDR keeps the port of hostname=
    assert svc.secret_file is None and svc.number("sync_interval") == 1.0
    assert cfg.find_node("node2") == (svc, svc.nodes[1])


def test_extra_keys_and_node_options(tmp_path) -> None:
    text = textwrap.dedent("""\
        [connmon_service_web]
        name: web
        secret_file: secret
        socket: /run/connmon/agent.sock
        sync_interval: 0.5
        full_sync_interval: 10
        peer_stale_after: 2
        peer_drop_after: 30
        nodes:
            a hostname=[::1]:5900 bind=[::1]:5901 socket=/tmp/a.sock host=web-a
            b hostname=localhost:5902
        """)
    path = tmp_path / "c.cfg"
    path.write_text(text)
    svc = load_config(str(path)).service("web")
    assert svc.secret_file == str(tmp_path / "secret")  # relative to the file
    assert svc.socket == "/run/connmon/agent.sock"
    assert svc.number("sync_interval") == 0.5 and svc.number("peer_drop_after") == 30
    a, b = svc.nodes
    assert a.address == ("::1", 5900) and a.bind == ("::1", 5901) and a.hostname == "[::1]:5900"
    assert a.socket == "/tmp/a.sock" and a.host == "web-a"
    assert b.address == ("localhost", 5902)


def test_no_file_means_one_local_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CONFIG, raising=False)
    if os.path.exists("/etc/connmon.cfg"):
        pytest.skip("this machine has /etc/connmon.cfg")
    cfg = load_config()
    (node,) = cfg.service("default").nodes
    assert node.name == "node1" and node.address == ("localhost", DEFAULT_PORT) and node.bind == ("localhost", DEFAULT_PORT)
    opts = ClusterOptions.from_config(cfg, "node1")
    assert opts.peers == () and opts.secret is None


def test_environment_names_the_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.cfg"
    path.write_text(ORIGINAL.replace("default", "envsvc"))
    monkeypatch.setenv(ENV_CONFIG, str(path))
    assert list(load_config().services) == ["envsvc"]
    # --config wins over the environment
    other = tmp_path / "d.cfg"
    other.write_text(ORIGINAL)
    assert list(load_config(str(other)).services) == ["default"]


BAD = [
    ("nodes:\n    n1 hostname=h:1\n", 1, "outside of a [connmon_service_NAME] section"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1\n[other]\n", 4, "unknown section [other]"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1\n[connmon_service_a]\n", 4, "appears twice"),
    ("[connmon_service_a\n", 1, "unterminated section header"),
    ("[connmon_service_a]\nthis is not a key\n", 2, "expected 'key: value'"),
    ("[connmon_service_a]\nnodez:\n    n1 hostname=h:1\n", 2, "unknown key 'nodez'"),
    ("[connmon_service_a]\nname: a\nname: b\n", 3, "given twice"),
    ("[connmon_service_a]\n    n1 hostname=h:1\n", 2, "continues no key"),
    ("[connmon_service_a]\nname: a\n", 1, "lists no nodes"),
    ("[connmon_service_a]\nnodes:\n    n1\n", 3, "node 'n1' has no hostname=HOST:PORT"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h\n", 3, "is not HOST:PORT"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:99999\n", 3, "bad port"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1 colour=red\n", 3, "unknown option 'colour'"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1 bind\n", 3, "expected key=value"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1\n    n1 hostname=h:2\n", 4, "listed twice (first on line 3)"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1\n    n2 hostname=h:1\n", 4, "same hostname h:1"),
    ("[connmon_service_a]\nnodes:\n    hostname=h:1\n", 3, "starts with the node's name"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1 socket=relative.sock\n", 3, "socket must be an absolute path"),
    ("[connmon_service_a]\nsync_interval: soon\nnodes:\n    n1 hostname=h:1\n", 2, "sync_interval must be a number"),
    ("[connmon_service_a]\npeer_drop_after: -1\nnodes:\n    n1 hostname=h:1\n", 2, "peer_drop_after must be between"),
    ("[connmon_service_a]\nname: bad name!\nnodes:\n    n1 hostname=h:1\n", 2, "service name 'bad name!'"),
    ("[connmon_service_a]\nnodes:\n    n1 hostname=h:1\n[connmon_service_b]\nname: a\nnodes:\n    n2 hostname=h:2\n", 4,
     "service 'a' is defined twice"),
]


@pytest.mark.parametrize("text, line, problem", BAD, ids=[b[2][:30] for b in BAD])
def test_each_mistake_names_file_line_and_problem(text: str, line: int, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "/etc/connmon.cfg")
    message = str(info.value)
    assert message.startswith(f"/etc/connmon.cfg, line {line}: "), message
    assert problem in message


def test_a_file_without_services_and_a_missing_file(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"^/x.cfg: defines no \[connmon_service_NAME\] section"):
        parse_config("# nothing\n", "/x.cfg")
    missing = tmp_path / "nope.cfg"
    with pytest.raises(ConfigError, match=r"config file .*nope.cfg: cannot read it: No such file"):
        load_config(str(missing))


def test_unknown_node_and_ambiguous_node() -> None:
    cfg = parse_config(ORIGINAL, "/c.cfg")
    with pytest.raises(ConfigError, match=r"/c.cfg: no node 'node9' \(nodes: node1, node2, node3\)"):
        cfg.find_node("node9")
    two = ORIGINAL + "[connmon_service_other]\nnodes:\n    node1 hostname=10.0.0.1:5800\n"
    with pytest.raises(ConfigError, match="in several services"):
        parse_config(two, "/c.cfg").find_node("node1")
    with pytest.raises(ConfigError, match="no service 'nope'"):
        cfg.service("nope")


def test_non_loopback_bind_needs_a_secret(tmp_path) -> None:
    cfg = parse_config(ORIGINAL, "/c.cfg")
    with pytest.raises(ConfigError, match=r"node 'node3' would listen on 0.0.0.0:5800, which is not loopback, "
                                          r"without peer authentication; set 'secret_file:'"):
        ClusterOptions.from_config(cfg, "node3")
    secret = tmp_path / "secret"
    secret.write_bytes(b"0123456789abcdef0123")
    secret.chmod(0o600)
    with_secret = parse_config(ORIGINAL.replace("name: default", f"name: default\nsecret_file: {secret}"), "/c.cfg")
    opts = ClusterOptions.from_config(with_secret, "node3")
    assert opts.secret == b"0123456789abcdef0123"
    assert "0123456789" not in repr(opts)


@pytest.mark.parametrize("mode, data, problem", [
    (0o644, b"0123456789abcdef", "accessible to group/other (mode 0644)"),
    (0o600, b"short", "holds 5 bytes; a secret needs at least 16"),
])
def test_bad_secret_files_are_refused(tmp_path, mode: int, data: bytes, problem: str) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(data)
    secret.chmod(mode)
    cfg = parse_config(ORIGINAL.replace("name: default", f"name: default\nsecret_file: {secret}"), "/c.cfg")
    with pytest.raises(ConfigError, match=f"secret file {secret}"):
        ClusterOptions.from_config(cfg, "node1")
    with pytest.raises(ConfigError) as info:
        ClusterOptions.from_config(cfg, "node1")
    assert problem in str(info.value)


def test_loopback_detection() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.168.1.5")
    assert not is_loopback("web1")


def test_cli_prints_one_line_naming_the_file_and_line(tmp_path) -> None:
    path = tmp_path / "c.cfg"
    path.write_text("[connmon_service_default]\nnodes:\n    n1 hostname=127.0.0.1:notaport\n")
    out = subprocess.run([sys.executable, "-m", "connmon_agent", "start", "--socket", str(tmp_path / "s" / "a.sock"),
                          "--config", str(path), "--node", "n1"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert out.stderr.strip() == (f"connmon-agent start: error: {path}, line 3: node 'n1': hostname "
                                  f"'127.0.0.1:notaport' has a bad port (1-65535)")
