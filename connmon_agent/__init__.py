"""connmon: ``top`` for database connection pools.

Importing this package must work with only SQLAlchemy installed: Django,
urwid and psutil are imported by the modules that need them, never here.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import AgentUnavailable, ConfigError, ConnmonError, ProtocolError

__all__ = [
    "__version__",
    "AgentUnavailable",
    "ConfigError",
    "ConnmonError",
    "ProtocolError",
]
