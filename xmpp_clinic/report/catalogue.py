"""The requirement catalogue shipped inside the package (I.11).

``catalogue.toml`` is generated from the shared REQUIREMENTS.md and committed, so the
report needs nothing outside the installed package.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Requirement:
    """One catalogue entry: ``I.4``, must/should, the short text, what the gateway owes."""

    id: str
    section: str
    level: str
    text: str
    gateway: str


@cache
def load_catalogue() -> tuple[Requirement, ...]:
    """Every requirement in catalogue order (I.1 .. IV.9)."""
    raw = resources.files(__package__).joinpath("catalogue.toml").read_text(encoding="utf-8")
    entries = tomllib.loads(raw)["requirement"]
    return tuple(Requirement(**entry) for entry in entries)


def catalogue_ids() -> tuple[str, ...]:
    """The IDs in catalogue order."""
    return tuple(item.id for item in load_catalogue())
