"""The hospital directory as plain data: persons, groups, memberships, and their diff (IV.2, I.3).

A :class:`Directory` is an immutable snapshot. Imports (CSV, LDAP) build a new snapshot;
:func:`diff` says what would change (added / changed / removed persons and memberships)
before anything is applied, and :func:`check_removals` refuses a snapshot that would
remove too many persons at once (an empty or truncated export must not offboard the
hospital). Nothing here knows SQL or stanzas.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

GroupKind = Literal["ward", "team", "department", "role"]
GROUP_KINDS: tuple[GroupKind, ...] = get_args(GroupKind)

# Group names appear in commands and configs: keep them to characters nobody escapes.
_GROUP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SLUG = re.compile(r"[^a-z0-9._-]+")


class DirectoryError(Exception):
    """A directory operation that cannot be done; ``str()`` is one human sentence."""


class InvalidGroup(DirectoryError):
    pass


class TooManyRemovals(DirectoryError):
    """An import would remove more persons than ``directory.max_removal_share`` allows."""


def check_group(name: str) -> str:
    """A valid group name (lower case), or InvalidGroup naming the rule."""
    value = name.strip().lower()
    if not _GROUP.match(value):
        raise InvalidGroup(
            f"invalid group name {name!r}: use 1-64 of a-z 0-9 . _ - starting with a letter/digit"
        )
    return value


def group_kind(name: str) -> GroupKind:
    """The kind a group's name declares by its prefix: ``ward-4b`` is a ward; else a team."""
    prefix = name.split("-", 1)[0]
    for kind in GROUP_KINDS:
        if prefix == kind:
            return kind
    return "team"


def role_group(role: str) -> str | None:
    """The group every person of ``role`` is in (``role-nurse``), so threads bind to roles."""
    slug = _SLUG.sub("-", role.strip().lower()).strip("-._")
    return f"role-{slug}"[:64] if slug else None


@dataclass(frozen=True)
class Person:
    """One person of the hospital: their JIDs (all in the user domains) and groups.

    ``key`` identifies the person across imports: the staff id, or the first JID when
    the source has none. ``groups`` includes the role's group (:func:`role_group`).
    """

    key: str
    name: str
    staff_id: str
    role: str
    jids: tuple[str, ...]
    groups: frozenset[str] = field(default_factory=frozenset)

    def same_as(self, other: Person) -> bool:
        return (self.name, self.staff_id, self.role, self.jids) == (
            other.name,
            other.staff_id,
            other.role,
            other.jids,
        )


@dataclass(frozen=True)
class Membership:
    """``person`` (a key) is in ``group``."""

    person: str
    group: str


class Directory:
    """An immutable snapshot: person key -> Person, with group and JID look-ups."""

    def __init__(self, persons: Iterable[Person] = ()) -> None:
        self._persons: Mapping[str, Person] = {p.key: p for p in persons}
        by_jid: dict[str, Person] = {}
        groups: dict[str, set[str]] = {}
        for person in self._persons.values():
            for jid in person.jids:
                by_jid[jid] = person
            for group in person.groups:
                groups.setdefault(group, set()).update(person.jids)
        self._by_jid: Mapping[str, Person] = by_jid
        self._groups: Mapping[str, frozenset[str]] = {g: frozenset(j) for g, j in groups.items()}

    def __iter__(self) -> Iterator[Person]:
        return iter(sorted(self._persons.values(), key=lambda p: p.key))

    def __len__(self) -> int:
        return len(self._persons)

    def get(self, key: str) -> Person | None:
        return self._persons.get(key)

    def person_of(self, jid: str) -> Person | None:
        """The person owning bare ``jid``; None for anyone outside the directory (IV.2)."""
        return self._by_jid.get(jid)

    @property
    def jids(self) -> frozenset[str]:
        """Every JID of every person: who may be a member at all (IV.2)."""
        return frozenset(self._by_jid)

    @property
    def groups(self) -> Mapping[str, frozenset[str]]:
        """Group name -> the JIDs of its members."""
        return self._groups

    def members_of(self, group: str) -> frozenset[str]:
        return self._groups.get(group, frozenset())

    def memberships(self) -> frozenset[Membership]:
        return frozenset(Membership(p.key, g) for p in self._persons.values() for g in p.groups)


@dataclass(frozen=True)
class DirectoryDiff:
    """What applying a new snapshot changes; empty when the import is idempotent."""

    added: tuple[Person, ...]
    changed: tuple[tuple[Person, Person], ...]  # (before, after)
    removed: tuple[Person, ...]
    memberships_added: tuple[Membership, ...]
    memberships_removed: tuple[Membership, ...]
    persons_before: int

    @property
    def empty(self) -> bool:
        return not (
            self.added
            or self.changed
            or self.removed
            or self.memberships_added
            or self.memberships_removed
        )

    @property
    def removal_share(self) -> float:
        """Removed persons as a share of those there before (0 for an empty directory)."""
        return len(self.removed) / self.persons_before if self.persons_before else 0.0

    def lines(self) -> list[str]:
        """The diff as an operator reads it: one line per change, no free text but names."""
        out = [f"+ person {p.key} {p.name} ({', '.join(p.jids)})" for p in self.added]
        out += [f"~ person {after.key} {after.name}" for _before, after in self.changed]
        out += [f"- person {p.key} {p.name} ({', '.join(p.jids)})" for p in self.removed]
        out += [f"+ member {m.person} of {m.group}" for m in self.memberships_added]
        out += [f"- member {m.person} of {m.group}" for m in self.memberships_removed]
        return out

    def summary(self) -> str:
        return (
            f"persons: {len(self.added)} added, {len(self.changed)} changed, "
            f"{len(self.removed)} removed; memberships: {len(self.memberships_added)} added, "
            f"{len(self.memberships_removed)} removed"
        )


def diff(old: Directory, new: Directory) -> DirectoryDiff:
    """Everything that differs between ``old`` and ``new`` (by person key)."""
    added = tuple(p for p in new if old.get(p.key) is None)
    removed = tuple(p for p in old if new.get(p.key) is None)
    changed: list[tuple[Person, Person]] = []
    for person in new:
        before = old.get(person.key)
        if before is not None and not before.same_as(person):
            changed.append((before, person))
    old_m, new_m = old.memberships(), new.memberships()
    order = lambda m: (m.group, m.person)  # noqa: E731
    return DirectoryDiff(
        added,
        tuple(changed),
        removed,
        tuple(sorted(new_m - old_m, key=order)),
        tuple(sorted(old_m - new_m, key=order)),
        len(old),
    )


def check_removals(change: DirectoryDiff, max_share: float, *, force: bool) -> None:
    """Refuse an import removing more than ``max_share`` of the persons unless forced.

    An export that came out empty or truncated would otherwise offboard most of the
    hospital in one sync (IV.2, I.12: fail closed).
    """
    if force or change.removal_share <= max_share:
        return
    raise TooManyRemovals(
        f"this import would remove {len(change.removed)} of {change.persons_before} persons "
        f"({change.removal_share:.0%}, more than directory.max_removal_share = {max_share:.0%}); "
        "check the export, or pass --force if this is intended"
    )
