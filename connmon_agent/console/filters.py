"""The row filter typed after ``/``: regular expressions, optionally per field.

Syntax: space-separated terms, all of which must match. A term is a regular
expression (searched, not anchored), optionally prefixed ``field:`` to test
one field (``host:``, ``program:``, ``pid:``, ``db:``, ``pool:``); a bare
term is tested against the names the current view shows. Matching ignores
case unless the term has a capital letter (as ``less`` and ``vim`` do). A
leading ``!`` on the whole filter inverts it, as does the ``!`` key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import ConfigError

FIELD_ALIASES = {
    "host": "host",
    "h": "host",
    "program": "program",
    "prog": "program",
    "p": "program",
    "pid": "pid",
    "db": "target",
    "database": "target",
    "target": "target",
    "pool": "name",
}

#: The fields a bare term is tested against, per view.
VIEW_FIELDS = {
    "program": ("host", "program"),
    "host": ("host",),
    "database": ("target",),
    "process": ("host", "program", "pid"),
    "pool": ("host", "program", "pid", "name", "target"),
}


@dataclass(frozen=True)
class RowFilter:
    """A parsed filter; ``RowFilter()`` lets everything through."""

    text: str = ""
    inverted: bool = False
    terms: tuple[tuple[str | None, re.Pattern[str]], ...] = ()

    @classmethod
    def parse(cls, text: str, inverted: bool = False) -> "RowFilter":
        """Raises ConfigError naming the bad term."""
        text = text.strip()
        body = text
        if body.startswith("!"):
            inverted = not inverted
            body = body[1:].strip()
        terms = []
        for term in body.split():
            fieldname = None
            name, sep, rest = term.partition(":")
            if sep and name.lower() in FIELD_ALIASES:
                fieldname = FIELD_ALIASES[name.lower()]
                term = rest
            flags = 0 if any(c.isupper() for c in term) else re.IGNORECASE
            try:
                terms.append((fieldname, re.compile(term, flags)))
            except re.error as err:
                raise ConfigError(f"bad filter {term!r}: {err}") from None
        return cls(text=text if not text.startswith("!") else body, inverted=inverted,
                   terms=tuple(terms))

    @property
    def active(self) -> bool:
        return bool(self.terms)

    def inverse(self) -> "RowFilter":
        return RowFilter(self.text, not self.inverted, self.terms)

    def describe(self) -> str:
        if not self.terms:
            return ""
        return ("!" if self.inverted else "") + self.text

    def predicate(self, view: str, getters: dict[str, Callable[[Any], Any]]) -> Callable[[Any], bool] | None:
        """A function record -> bool for ``view``, or None when nothing is filtered."""
        if not self.terms:
            return None
        default_fields = VIEW_FIELDS[view]
        checks = []
        for fieldname, rx in self.terms:
            fields = (fieldname,) if fieldname else default_fields
            checks.append((tuple(getters[f] for f in fields), rx.search))
        inverted = self.inverted

        def matches(rec: Any) -> bool:
            for gets, search in checks:
                for get in gets:
                    if search(str(get(rec))):
                        break
                else:
                    return inverted
            return not inverted

        return matches
