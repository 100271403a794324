"""``connmon-agent``: start | stop | status, plus console and demo when their
modules are present.

Every ConnmonError or OSError becomes one clear line on stderr and exit
status 1 (2 for bad configuration/arguments); ``--debug`` shows tracebacks.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from typing import Any, Callable, Sequence

from . import __version__, endpoint, protocol
from .errors import ConfigError, ConnmonError
from .paths import default_pidfile, default_socket_path

#: Subcommands provided by other modules: (name, module with add_arguments/run).
PLUGGED_COMMANDS = (("console", "connmon_agent.console.command"), ("demo", "connmon_agent.demo"))


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--socket", default=None, metavar="PATH",
                        help=f"the agent's Unix socket (default: $CONNMON_SOCKET or {default_socket_path()})")
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")

    parser = argparse.ArgumentParser(prog="connmon-agent", description="top for database connection pools: the per-host agent")
    parser.add_argument("--version", action="version", version=f"connmon {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    start = sub.add_parser("start", parents=[common], help="run the agent (foreground unless --daemon)")
    start.add_argument("--daemon", action="store_true", help="detach into the background and write a pid file")
    start.add_argument("--pidfile", metavar="PATH", help="pid file (default with --daemon: agent.pid beside the socket)")
    start.add_argument("--log-file", metavar="PATH", help="log here instead of stderr (with --daemon: instead of nowhere)")
    start.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper)
    start.add_argument("--stale-after", type=_positive, default=10.0, metavar="SECONDS",
                       help="show a process or host as stale after this much silence (default 10)")
    start.add_argument("--drop-after", type=_positive, default=120.0, metavar="SECONDS",
                       help="forget a process silent this long and close its connection; 0 never (default 120)")
    start.add_argument("--hello-timeout", type=_positive, default=10.0, metavar="SECONDS",
                       help="drop a connection that says nothing for this long (default 10)")
    start.add_argument("--allow-any-uid", action="store_true",
                       help="accept reporters running as any user (default: the agent's user and root)")
    # For benchmarks only (benchmarks/bench_agent_ingest.py): one load generator
    # stands in for thousands of processes. Never use it in production.
    start.add_argument("--trust-hello-pid", action="store_true", help=argparse.SUPPRESS)
    start.add_argument("--subscriber-buffer", type=int, default=16 << 20, metavar="BYTES",
                       help="a subscriber with more unsent bytes than this skips updates (default 16 MiB)")
    cluster = start.add_argument_group("cluster (see the README's cluster section)")
    cluster.add_argument("--config", metavar="FILE",
                         help="cluster configuration (default: $CONNMON_CONFIG, else /etc/connmon.cfg if present)")
    cluster.add_argument("--node", metavar="NAME",
                         help="join the cluster as this node of the configuration: listen on its TCP address "
                              "and link to every other node of its service (default: local only)")
    cluster.add_argument("--service", metavar="NAME", help="the service of --node, when several name it")
    cluster.add_argument("--host", metavar="NAME",
                         help="the host name this agent shows (default: the node's host= option, else the machine's)")
    start.set_defaults(func=cmd_start)

    stop = sub.add_parser("stop", parents=[common], help="stop the agent started with --daemon")
    stop.add_argument("--pidfile", metavar="PATH", help="pid file (default: agent.pid beside the socket)")
    stop.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS", help="how long to wait for it to exit")
    stop.set_defaults(func=cmd_stop)

    status = sub.add_parser("status", parents=[common], help="one-shot view of the agent's state")
    status.add_argument("--json", action="store_true", help="the status JSON (schema in docs/internals.rst)")
    status.add_argument("--timeout", type=_positive, default=10.0, metavar="SECONDS")
    endpoint.add_arguments(status)
    status.set_defaults(func=cmd_status)

    for name, module_name in PLUGGED_COMMANDS:
        if _find_module(module_name):
            module = importlib.import_module(module_name)
            p = sub.add_parser(name, parents=[common], help=_summary(module))
            module.add_arguments(p)
            p.set_defaults(func=_plugged(module))
    return parser


def _summary(module: Any) -> str | None:
    """A plugged module's ``HELP``, else the first paragraph of its docstring."""
    text = getattr(module, "HELP", None)
    if text:
        return str(text)
    paragraph = (module.__doc__ or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()) or None


def _find_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:  # a parent package is missing
        return False


def _plugged(module: Any) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        return module.run(args)

    return run


def cmd_start(args: argparse.Namespace) -> int:
    from .agent.main import run_agent
    from .agent.options import AgentOptions

    cluster = None
    host = args.host
    if args.node:
        from .agent.federation import ClusterOptions
        from .config import load_config

        config = load_config(args.config)
        cluster = ClusterOptions.from_config(config, args.node, args.service)
        host = host or cluster.node.host
        if not args.socket_given:
            svc = config.service(cluster.service)
            args.socket = cluster.node.socket or svc.socket or args.socket
    elif args.config or args.service:
        raise ConfigError("--config and --service need --node NAME (the node of the configuration this agent is)")
    socket_path = os.path.abspath(args.socket)
    options = AgentOptions(
        socket_path=socket_path,
        hello_timeout=args.hello_timeout,
        stale_after=args.stale_after,
        drop_after=args.drop_after,
        trust_hello_pid=args.trust_hello_pid,
        allow_any_uid=args.allow_any_uid,
        subscriber_buffer=args.subscriber_buffer,
        cluster=cluster,
    )
    if host:
        options.host = host
    pidfile = args.pidfile or (default_pidfile(socket_path) if args.daemon else None)
    return run_agent(
        options,
        daemon=args.daemon,
        pidfile=os.path.abspath(pidfile) if pidfile else None,
        log_file=os.path.abspath(args.log_file) if args.log_file else None,
        log_level=args.log_level,
    )


def cmd_stop(args: argparse.Namespace) -> int:
    from .agent.daemon import stop_agent

    pidfile = args.pidfile or default_pidfile(args.socket)
    pid = stop_agent(args.socket, pidfile, args.timeout)
    print(f"connmon agent (pid {pid}) stopped")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .query import fetch_state

    state = fetch_state(endpoint.from_args(args), timeout=args.timeout)
    if args.json:
        # Indented for a person at a terminal; compact for scripts, where it
        # can be tens of MB. json.dumps, not json.dump: only dumps uses the
        # C encoder (dump writes chunk by chunk from the pure-Python one).
        sys.stdout.write(json.dumps(state, indent=2 if sys.stdout.isatty() else None))
        sys.stdout.write("\n")
    else:
        from .agent.table import render

        sys.stdout.write(render(state))
    return 0


JSON_ENV = "CONNMON_JSON"


def choose_json() -> str:
    """The JSON decoder of this command: orjson when it is installed, unless
    ``CONNMON_JSON=stdlib``; ``CONNMON_JSON=orjson`` requires it."""
    choice = os.environ.get(JSON_ENV, "auto") or "auto"
    if choice not in ("auto", "stdlib", "orjson"):
        raise ConfigError(f"{JSON_ENV}={choice!r}: expected one of auto, stdlib, orjson")
    if choice == "stdlib":
        protocol.use_stdlib_json()
        return "stdlib"
    if protocol.use_fast_json():
        return "orjson"
    if choice == "orjson":
        raise ConfigError(f"{JSON_ENV}=orjson but orjson is not installed (pip install orjson)")
    return "stdlib"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.socket_given = args.socket is not None
    if args.socket is None:
        args.socket = default_socket_path()
    try:
        choose_json()
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ConnmonError, OSError) as err:
        if args.debug:
            raise
        print(f"connmon-agent {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1


def _one_line(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        where = f": {err.filename}" if err.filename else ""
        return f"{err.strerror}{where}"
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
