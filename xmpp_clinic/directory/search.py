"""Finding colleagues in the directory by name, ward or role (I.3, IV.2).

Pure matching for the XEP-0055 search the component answers (xmpp/search.py). Only
persons in the directory are ever returned, and only to persons in the directory.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from xmpp_clinic.directory.model import Directory, Person

MAX_RESULTS = 50


@dataclass(frozen=True)
class Query:
    """What was asked; every given term must match (case- and accent-insensitive)."""

    name: str = ""
    ward: str = ""
    role: str = ""

    @property
    def empty(self) -> bool:
        return not (self.name.strip() or self.ward.strip() or self.role.strip())


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).strip()


def _matches(person: Person, query: Query) -> bool:
    if query.name and _fold(query.name) not in _fold(person.name):
        return False
    if query.role and _fold(query.role) not in _fold(person.role):
        return False
    if query.ward:
        term = _fold(query.ward)
        groups = [g for g in person.groups if not g.startswith("role-")]
        if not any(term in g for g in groups):
            return False
    return True


def find(directory: Directory, query: Query, limit: int = MAX_RESULTS) -> list[Person]:
    """The persons matching ``query``, by name, at most ``limit``."""
    if query.empty:
        return []
    found = [p for p in directory if _matches(p, query)]
    return sorted(found, key=lambda p: (_fold(p.name), p.key))[:limit]
