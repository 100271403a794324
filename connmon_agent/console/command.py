"""live, interactive view of connection pools (needs urwid); --once --json|--csv for scripts

``connmon-agent console``. This module is imported by the CLI at parse
time, so it must not import urwid: the screen is imported inside ``run``.
"""
from __future__ import annotations

import argparse
import sys

from .. import endpoint
from ..errors import ConfigError, ConnmonError
from .columns import COLUMNS
from .filters import RowFilter
from .settings import GROUPS, VIEWS, Thresholds, ViewSpec

URWID_MISSING = "the console needs urwid: pip install 'connmon[console]'"


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value != value or value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative number: {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Thresholds()
    parser.add_argument("--refresh", type=_number, default=1.0, metavar="SECS",
                        help="update interval; + and - change it in the console (default 1)")
    parser.add_argument("--view", choices=VIEWS, default="program",
                        help="start in this view (default program: host × program)")
    parser.add_argument("--sort", metavar="FIELD", help="sort by this column (field name, title or key letter)")
    parser.add_argument("--reverse", action="store_true", help="reverse the sort order")
    parser.add_argument("--filter", metavar="REGEX", default="",
                        help="show only matching rows (as / in the console; a leading ! inverts)")
    parser.add_argument("--hide-idle", action="store_true", help="only pools holding a connection")
    parser.add_argument("--group", choices=[g for g in GROUPS if g], help="group rows by host, program or database")
    out = parser.add_argument_group("headless output (no screen)")
    out.add_argument("--once", action="store_true",
                     help="print one table and exit (two updates, --refresh apart, so rates are real)")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="with --once: JSON (the default)")
    fmt.add_argument("--csv", action="store_true", help="with --once: CSV, one line per row")
    th = parser.add_argument_group("thresholds (colours)")
    th.add_argument("--hold-warn", type=_number, default=d.hold_warn, metavar="SECS",
                    help=f"a checkout held this long is yellow (default {d.hold_warn:g})")
    th.add_argument("--hold-crit", type=_number, default=d.hold_crit, metavar="SECS",
                    help=f"... and this long red (default {d.hold_crit:g})")
    th.add_argument("--limit-warn", type=_number, default=d.limit_warn, metavar="FRACTION",
                    help=f"a pool this full (checked out / capacity) is yellow; full is red (default {d.limit_warn:g})")
    th.add_argument("--stale-after", type=_number, default=d.stale_after, metavar="SECS",
                    help=f"a process silent this long is shown stale (default {d.stale_after:g})")
    th.add_argument("--drop-after", type=_number, default=d.drop_after, metavar="SECS",
                    help=f"... and this long is not shown; 0 never (default {d.drop_after:g})")
    parser.add_argument("--history", type=_number, default=300.0, metavar="SECS",
                        help="time span of the sparklines (default 300)")
    parser.add_argument("--log-file", metavar="PATH",
                        help="where the console logs (default console.log in the runtime directory)")
    endpoint.add_arguments(parser)


def options_from(args: argparse.Namespace) -> tuple[Thresholds, ViewSpec]:
    """Thresholds and the starting view; ConfigError names a bad option."""
    thresholds = Thresholds(hold_warn=args.hold_warn, hold_crit=args.hold_crit,
                            limit_warn=args.limit_warn, stale_after=args.stale_after,
                            drop_after=args.drop_after)
    if args.sort is not None:
        from .columns import column_for

        if column_for(args.view, args.sort) is None:
            names = ", ".join(c.field for c in COLUMNS[args.view] if c.key)
            raise ConfigError(f"--sort {args.sort!r}: no such column in the {args.view} view ({names})")
    if args.refresh < 0.1:
        raise ConfigError("--refresh must be at least 0.1 seconds")
    if args.history < 10:
        raise ConfigError("--history must be at least 10 seconds")
    spec = ViewSpec(view=args.view, sort=args.sort, reverse=args.reverse or None,
                    filter=RowFilter.parse(args.filter), hide_idle=args.hide_idle, group=args.group)
    return thresholds, spec


def run(args: argparse.Namespace) -> int:
    try:
        thresholds, spec = options_from(args)
        where = endpoint.from_args(args)
    except ConfigError as err:
        print(f"connmon-agent console: error: {err}", file=sys.stderr)
        return 2
    if args.once or args.json or args.csv:
        return run_once(args, thresholds, spec, where)
    try:
        import urwid  # noqa: F401  (only to know it is there)
    except ImportError:
        print(URWID_MISSING, file=sys.stderr)
        return 2
    from .app import run_console

    return run_console(where, args.refresh, thresholds=thresholds, spec=spec,
                       history=args.history, log_file=args.log_file, debug=args.debug)


def run_once(args: argparse.Namespace, thresholds: Thresholds, spec: ViewSpec,
             where: str | endpoint.Endpoint | None = None) -> int:
    """The headless twin: needs no urwid and no terminal. ``where``: the
    agent (default: ``args.socket``)."""
    from ..query import subscribe
    from .headless import render_once
    from .history import History
    from .model import Model

    states = []
    try:
        with subscribe(where if where is not None else args.socket, args.refresh, timeout=max(5.0, 3 * args.refresh)) as sub:
            for state in sub:
                states.append(state)
                if len(states) == 2:
                    break
    except ConnmonError as err:
        print(f"connmon-agent console: error: {err}", file=sys.stderr)
        return 1
    model = Model(thresholds, History(window=args.history, slots=60))
    sys.stdout.write(render_once(states, spec, "csv" if args.csv else "json", model))
    if not args.csv:
        sys.stdout.write("\n")
    sys.stdout.flush()
    return 0
