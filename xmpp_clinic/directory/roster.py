"""What each person's roster group should hold: their threads and colleagues (I.3, IV.2).

Pure planning for the XEP-0356 roster push (xmpp/roster_sync.py): :func:`entries_for`
says which entries belong in a person's configured roster group (e.g. "Clinic"), and
:func:`plan` turns a roster as fetched (or as last pushed) into the roster sets that
bring it there. Entries the person filed in their own groups too keep those groups; an
entry is removed only when the configured group was its only group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from xmpp_clinic.directory.model import Directory


@dataclass(frozen=True)
class RosterItem:
    """One roster entry: its JID, name, groups; ``remove`` asks the server to delete it."""

    jid: str
    name: str
    groups: frozenset[str] = field(default_factory=frozenset)
    remove: bool = False


@dataclass(frozen=True)
class ThreadView:
    """A thread as the roster shows it: its room JID, title and members."""

    jid: str
    title: str
    members: frozenset[str]


def entries_for(jid: str, directory: Directory, threads: Iterable[ThreadView]) -> dict[str, str]:
    """JID -> name of everything ``jid``'s roster group should hold.

    Their threads, and the people who share a ward, team or department with them (role
    groups are left out: "every nurse" is not a colleague list). Nobody outside the
    directory gets entries (IV.2).
    """
    person = directory.person_of(jid)
    if person is None:
        return {}
    wanted = {t.jid: t.title for t in threads if jid in t.members}
    for group in person.groups:
        if group.startswith("role-"):
            continue
        for colleague_jid in directory.members_of(group):
            colleague = directory.person_of(colleague_jid)
            if colleague is not None and colleague.key != person.key:
                wanted[colleague_jid] = colleague.name
    return wanted


def plan(
    current: Mapping[str, RosterItem], wanted: Mapping[str, str], group: str
) -> list[RosterItem]:
    """The roster sets that make ``group`` in ``current`` hold exactly ``wanted``."""
    changes: list[RosterItem] = []
    for jid, name in sorted(wanted.items()):
        have = current.get(jid)
        if have is None:
            changes.append(RosterItem(jid, name, frozenset({group})))
        elif group not in have.groups or have.name != name:
            changes.append(RosterItem(jid, name, have.groups | {group}))
    for jid, have in sorted(current.items()):
        if jid in wanted or group not in have.groups:
            continue
        others = have.groups - {group}
        if others:
            changes.append(RosterItem(jid, have.name, others))
        else:
            changes.append(RosterItem(jid, have.name, remove=True))
    return changes
