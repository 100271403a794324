"""django_connmon's settings, each a typed property with its default.

Read through ``conf`` (``from django_connmon.conf import conf``) so tests can
change them with ``override_settings``: nothing is cached here.

========================  =====================================================
setting                   meaning (default)
========================  =====================================================
CONNMON_PROGRAM_NAME      name the agent shows for this program (the top
                          package of ``DJANGO_SETTINGS_MODULE``, else the
                          script's name)
CONNMON_REPORT            report pools to the connmon agent (True)
CONNMON_SOCKET            agent socket path (the agent's default)
CONNMON_ADDR              ``host:port`` of an agent to reach over TCP (None)
CONNMON_SERVICE           connmon service name (None)
CONNMON_SECRET_FILE       file of the shared secret for TCP reports (None:
                          ``$CONNMON_SECRET_FILE``, else the service's
                          ``secret_file``)
CONNMON_INTERVAL          seconds between reports (None: the client's default)
CONNMON_LEAK_LOG          log leaked checkouts at request end (True)
MYSQLPOOL_BACKEND         django-mysqlpool: pool class name (None)
MYSQLPOOL_ARGUMENTS       django-mysqlpool: pool arguments (None)
========================  =====================================================
"""
from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings


class Settings:
    """Typed, defaulted access to the CONNMON_* and MYSQLPOOL_* settings."""

    def _get(self, name: str, default: Any) -> Any:
        return getattr(settings, name, default)

    @property
    def CONNMON_PROGRAM_NAME(self) -> str:
        value = self._get("CONNMON_PROGRAM_NAME", None)
        if value is not None:
            return value
        module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(settings, "SETTINGS_MODULE", None)
        if module:
            return module.split(".")[0]
        return os.path.basename(sys.argv[0] or "python") or "python"

    @property
    def CONNMON_REPORT(self) -> bool:
        return self._get("CONNMON_REPORT", True)

    @property
    def CONNMON_SOCKET(self) -> str | None:
        return self._get("CONNMON_SOCKET", None)

    @property
    def CONNMON_ADDR(self) -> str | None:
        return self._get("CONNMON_ADDR", None)

    @property
    def CONNMON_SERVICE(self) -> str | None:
        return self._get("CONNMON_SERVICE", None)

    @property
    def CONNMON_SECRET_FILE(self) -> str | None:
        return self._get("CONNMON_SECRET_FILE", None)

    @property
    def CONNMON_INTERVAL(self) -> float | None:
        return self._get("CONNMON_INTERVAL", None)

    @property
    def CONNMON_LEAK_LOG(self) -> bool:
        return self._get("CONNMON_LEAK_LOG", True)

    @property
    def MYSQLPOOL_BACKEND(self) -> str | None:
        return self._get("MYSQLPOOL_BACKEND", None)

    @property
    def MYSQLPOOL_ARGUMENTS(self) -> dict[str, Any] | None:
        return self._get("MYSQLPOOL_ARGUMENTS", None)


conf = Settings()
