"""The one exception hierarchy of connmon.

Low-level errors (``OSError``, ``ValueError`` from parsers) are translated
into these at a boundary; the CLI turns any of them into one line and a
non-zero exit.
"""
from __future__ import annotations


class ConnmonError(Exception):
    """Base of every error connmon raises on purpose."""


class ConfigError(ConnmonError):
    """A bad URL parameter, command-line option or configuration file."""


class ProtocolError(ConnmonError):
    """Malformed, hostile or unsupported bytes on a connmon socket."""


class AgentUnavailable(ConnmonError):
    """No agent answers at the given socket or address."""

    def __init__(self, where: str, reason: str = "") -> None:
        self.where = where
        self.reason = reason
        msg = f"no connmon agent at {where}"
        if reason:
            msg += f" ({reason})"
        super().__init__(msg)
