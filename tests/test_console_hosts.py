"""The console's host view shows every host of the agent's ``hosts`` list
(a cluster node's idle hosts too) with its last-heard age and staleness,
on screen and in the headless output; a remote process drills down to its
pool's checkouts like a local one."""
from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

urwid = pytest.importorskip("urwid")

from connmon_agent.console.headless import render_once  # noqa: E402
from connmon_agent.console.history import History  # noqa: E402
from connmon_agent.console.model import Model  # noqa: E402
from connmon_agent.console.settings import Thresholds, ViewSpec  # noqa: E402
from connmon_agent.console.filters import RowFilter  # noqa: E402
from connmon_agent.console.tableview import row_markup  # noqa: E402
from test_console_model import PG, T0, fleet, make_pool, make_process, make_state  # noqa: E402
from test_console_widgets import ENTER, Console  # noqa: E402


def idle_host(name: str, heard: float, stale: bool = False) -> dict[str, Any]:
    """A host row of the status JSON for a host with no processes."""
    return {"host": name, "processes": 0, "pools": 0, "capacity": 0, "gauges": {}, "counters": {},
            "longest_checkout": 0, "last_heard_age": heard, "stale": stale}


def cluster_state(at: float = T0, scale: int = 1) -> dict[str, Any]:
    """web1/web2 report processes; web3 (a peer's host) has none; web4 is
    a peer's host the agent has marked stale."""
    s = fleet(at, scale=scale)
    s["hosts"] += [idle_host("web3", 1.25), idle_host("web4", 2.0, stale=True)]
    return s


def test_host_view_at_80x24_shows_every_host_with_its_last_heard_age() -> None:
    c = Console(80, 24)
    c.feed(cluster_state(T0))
    c.feed(cluster_state(T0 + 1, scale=2))
    c.type("2")
    lines = c.text()
    assert lines[1].startswith("hosts 4↑4  procs 4↑4  pools 5↑5")
    assert lines[4:9] == [
        "HOST            PROCS POOLS▼CONNS   OUT  IDLE  CO/S FULL  HELD  SEEN HISTORY",
        "web1                3     4    15     8     7   167 100%   40s  0.2s           █",
        "web2                1     1     1     0     1     0   0%     0  8.0s",
        "web3                0     0     0     0     0     0    -     0  1.2s",
        "web4                0     0     0     0     0     0    -     0  2.0s",
    ]
    assert lines[21] == "host view"


def test_stale_hosts_are_marked_and_dim() -> None:
    m = Model(Thresholds(stale_after=5.0))
    m.ingest(cluster_state())
    t = m.table(ViewSpec(view="host", sort="host"))
    # web2: its only process silent for 8 s; web4: stale by the agent's word.
    assert [(r.host, r.stale) for r in t.rows] == [("web1", False), ("web2", True), ("web3", False),
                                                   ("web4", True)]
    widths = [col.width for col in t.columns]
    web3, web4 = t.rows[2], t.rows[3]
    assert {attr for attr, _ in row_markup(web4, t.columns, widths, m.thresholds, [])} == {"stale"}
    assert "stale" not in {attr for attr, _ in row_markup(web3, t.columns, widths, m.thresholds, [])}
    # A host heard from longer ago than --stale-after is stale too.
    s = cluster_state(T0 + 1)
    s["hosts"][2]["last_heard_age"] = 6.0
    m.ingest(s)
    assert [r.host for r in m.table(ViewSpec(view="host")).rows if r.stale] == ["web2", "web3", "web4"]


def test_idle_hosts_follow_filters_idle_hiding_and_drop_after() -> None:
    m = Model(Thresholds(stale_after=5.0, drop_after=60.0))
    s = cluster_state()
    s["hosts"].append(idle_host("gone", 61.0, stale=True))   # past --drop-after: not shown
    m.ingest(s)
    t = m.table(ViewSpec(view="host", sort="host"))
    assert [r.host for r in t.rows] == ["web1", "web2", "web3", "web4"]
    assert t.totals.hosts == 4
    t = m.table(ViewSpec(view="host", filter=RowFilter.parse("web[34]")))
    assert sorted(r.host for r in t.rows) == ["web3", "web4"] and t.totals.hosts == 2
    t = m.table(ViewSpec(view="host", hide_idle=True))
    assert [r.host for r in t.rows] == ["web1"] and t.totals.hosts == 1
    # The other views count every host in the header but show rows of processes.
    t = m.table(ViewSpec(view="program"))
    assert t.totals.hosts == 4 and {r.host for r in t.rows} == {"web1", "web2"}
    t = m.table(ViewSpec(view="host", group="host"))
    assert [r.host for r in t.rows if r.kind == "group"] == ["web1", "web2", "web3", "web4"]


def test_headless_host_rows_carry_last_heard_age_and_stale() -> None:
    model = Model(history=History(window=60, slots=6))
    out = render_once([cluster_state(T0), cluster_state(T0 + 1)], ViewSpec(view="host", sort="host"), "json", model)
    doc = json.loads(out)
    rows = {r["host"]: r for r in doc["rows"]}
    assert list(rows) == ["web1", "web2", "web3", "web4"]
    assert rows["web3"]["last_heard_age"] == 1.25 and rows["web3"]["stale"] is False
    assert rows["web3"]["processes"] == 0 and rows["web4"]["stale"] is True
    assert rows["web1"]["last_heard_age"] == 0.2
    assert doc["totals"]["hosts"] == 4
    text = render_once([cluster_state(T0), cluster_state(T0 + 1)], ViewSpec(view="host", sort="host"), "csv",
                       Model())
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["host"], r["last_heard_age"], r["stale"]) for r in csv_rows] == [
        ("web1", "0.2", "false"), ("web2", "8.0", "true"), ("web3", "1.25", "false"), ("web4", "2.0", "true")]


def test_a_remote_process_drills_down_to_its_pools_checkouts() -> None:
    # The state of a cluster node: its own host h1, and h2's process synced from a peer.
    local = make_process("h1", 11, "api", [make_pool("1", PG, out=0, idle=2, checkouts=3)])
    remote = make_process("h2", 22, "worker", [make_pool("1", PG, out=2, idle=0, checkouts=9,
                                                         ages=(3.0, 7.5), holder="GET /orders")])
    c = Console(80, 30)
    c.feed(make_state([local, remote], T0))
    c.type("4")                                   # process view
    c.type("/host:h2" + "\r")
    assert [line.split()[:2] for line in c.rows()] == [["h2", "22"]]
    c.type(ENTER)                                 # one pool: straight to its detail
    screen = c.screen_text()
    assert "Process h2 pid 22 worker" in screen
    assert "Checkouts (2)" in screen and "7.5s GET /orders" in screen
