"""Reading the directory from a CSV export (IV.2, I.3).

Columns (a header row names them, in any order; extra columns are ignored):

- ``jid``: the person's bare JID; several separated by ``;`` (each in ``xmpp.user_domains``)
- ``name``: display name
- ``staff_id``: the hospital's staff number, which identifies the person across imports
  (when empty, the first JID does)
- ``role``: e.g. ``nurse``; every person of a role is also in group ``role-<role>``
- ``groups``: group names separated by ``;`` (``ward-4b;team-icu-night``); the prefix
  before the first ``-`` names the kind (ward, team, department, role), else a team.

A bad row is reported with its line number and reason, and skipped; the rest is read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass

from xmpp_clinic.directory.model import (
    Directory,
    DirectoryError,
    Person,
    check_group,
    role_group,
)
from xmpp_clinic.jids import InvalidJid, bare_jid, domain_of

COLUMNS = ("jid", "name", "staff_id", "role", "groups")
REQUIRED = ("jid", "name")
MAX_FIELD_CHARS = 200


class BadFile(DirectoryError):
    """The file cannot be read as a directory export at all (header, encoding)."""


@dataclass(frozen=True)
class BadRow:
    """Line ``line`` of the source was skipped because of ``reason``."""

    line: int
    reason: str


@dataclass(frozen=True)
class Parsed:
    """What a source yielded: the persons read, and the rows skipped with reasons."""

    directory: Directory
    bad_rows: tuple[BadRow, ...]


def person_from(
    *,
    jids: Iterable[str],
    name: str,
    staff_id: str,
    role: str,
    groups: Iterable[str],
    user_domains: frozenset[str],
) -> Person:
    """One validated person; DirectoryError says what is wrong (shared by CSV and LDAP)."""
    checked: list[str] = []
    for raw in jids:
        raw = raw.strip()
        if not raw:
            continue
        if "/" in raw:
            raise DirectoryError(f"JID {raw!r} has a /resource; give the bare JID")
        try:
            jid = bare_jid(raw)
        except InvalidJid as exc:
            raise DirectoryError(f"invalid JID: {exc}") from None
        if domain_of(jid) not in user_domains:
            raise DirectoryError(f"{jid} is not in xmpp.user_domains")
        if jid not in checked:
            checked.append(jid)
    if not checked:
        raise DirectoryError("no JID")
    name, staff_id, role = name.strip(), staff_id.strip(), role.strip()
    if not name:
        raise DirectoryError("no name")
    for label, value in (("name", name), ("staff_id", staff_id), ("role", role)):
        if len(value) > MAX_FIELD_CHARS or any(ord(c) < 32 for c in value):
            raise DirectoryError(f"{label} is not one line of at most {MAX_FIELD_CHARS} characters")
    names = {check_group(g) for g in groups if g.strip()}
    by_role = role_group(role)
    if by_role is not None:
        names.add(by_role)
    return Person(
        key=staff_id or checked[0],
        name=name,
        staff_id=staff_id,
        role=role,
        jids=tuple(sorted(checked)),
        groups=frozenset(names),
    )


class Collector:
    """Gathers persons row by row, refusing a second claim on a key or a JID."""

    def __init__(self) -> None:
        self.persons: dict[str, Person] = {}
        self._owner: dict[str, str] = {}
        self.bad: list[BadRow] = []

    def add(self, line: int, person: Person) -> None:
        if person.key in self.persons:
            self.bad.append(BadRow(line, f"staff_id {person.key} appears twice"))
            return
        for jid in person.jids:
            if jid in self._owner:
                self.bad.append(BadRow(line, f"{jid} already belongs to {self._owner[jid]}"))
                return
        self.persons[person.key] = person
        self._owner.update({jid: person.key for jid in person.jids})

    def parsed(self) -> Parsed:
        return Parsed(Directory(self.persons.values()), tuple(self.bad))


def parse_csv(text: str, user_domains: frozenset[str]) -> Parsed:
    """The persons of a CSV export; bad rows skipped and reported (IV.2)."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise BadFile(
            f"the header row lacks {', '.join(missing)}; expected columns: {', '.join(COLUMNS)}"
        )
    reader.fieldnames = header
    collector = Collector()
    for row in reader:
        line = reader.line_num
        if None in row:
            collector.bad.append(BadRow(line, "more fields than the header names"))
            continue
        values = {k: (v or "") for k, v in row.items()}
        if not any(v.strip() for v in values.values()):
            continue  # blank line
        try:
            person = person_from(
                jids=values["jid"].split(";"),
                name=values["name"],
                staff_id=values.get("staff_id", ""),
                role=values.get("role", ""),
                groups=values.get("groups", "").split(";"),
                user_domains=user_domains,
            )
        except DirectoryError as exc:
            collector.bad.append(BadRow(line, str(exc)))
            continue
        collector.add(line, person)
    return collector.parsed()


def read_csv(data: bytes, user_domains: frozenset[str]) -> Parsed:
    """Decode (UTF-8, with or without a byte order mark) and parse an export."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadFile(f"the file is not UTF-8 (byte {exc.start})") from None
    return parse_csv(text, user_domains)
