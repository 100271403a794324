"""The agent's settings, as given on the ``start`` command line."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AgentOptions:
    """Everything :class:`~connmon_agent.agent.server.AgentServer` needs to run."""

    socket_path: str
    #: A connection that has not said hello after this many seconds is dropped.
    hello_timeout: float = 10.0
    #: A process (and a host) not heard from for this long is shown ``stale``.
    stale_after: float = 10.0
    #: A process silent this long is forgotten and its connection closed (0: never).
    drop_after: float = 120.0
    #: FOR BENCHMARKS ONLY: identify reporters by the pid/host of their hello
    #: instead of SO_PEERCRED, and do not watch those pids. Lets one load
    #: generator stand in for thousands of processes; the report path is the
    #: real one.
    trust_hello_pid: bool = False
    #: A subscriber with more than this many bytes not yet sent skips a tick.
    subscriber_buffer: int = 16 << 20
    #: Reporters must run as the agent's uid (or root) unless this is set.
    allow_any_uid: bool = False
    host: str = field(default_factory=socket.gethostname)
    #: This node's place in a cluster (agent/federation.py ClusterOptions);
    #: None: a local agent on its Unix socket only.
    cluster: Any = None
