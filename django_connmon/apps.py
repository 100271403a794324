"""The Django app: registers the system checks (``django_connmon.E0xx``)."""
from __future__ import annotations

from django.apps import AppConfig


class DjangoConnmonConfig(AppConfig):
    name = "django_connmon"
    verbose_name = "connmon"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the checks)
