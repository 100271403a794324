"""Pooled Django database backends: set ``DATABASES[alias]["ENGINE"]`` to
``django_connmon.backends.mysql``, ``.postgresql`` or ``.sqlite3``."""
