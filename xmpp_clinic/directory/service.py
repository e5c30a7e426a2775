"""Applying an import or sync: diff, guard, write, re-bind threads, offboard (IV.2, I.3).

One transaction writes the directory, reconciles every thread with its bound groups and
with the directory (threads/binding.py), records the import in the audit log and bumps
the "threads" and "directory" counters, so a running gateway kicks people who left
(status 321) and admits people who arrived before its next decision. Devices of every
JID that left the directory are then revoked ("left the directory", III.3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.directory import store as tables
from xmpp_clinic.directory.model import Directory, DirectoryDiff, check_removals, diff
from xmpp_clinic.registry.service import DeviceRegistry, UnknownDevice
from xmpp_clinic.store import Store
from xmpp_clinic.store.changes import bump
from xmpp_clinic.threads.binding import ThreadChange, reconcile_all

log = logging.getLogger(__name__)

TOPIC = "directory"
LEFT_REASON = "left the directory"


class _DryRun(Exception):
    """Raised inside the transaction to roll a dry run back after computing everything."""


@dataclass(frozen=True)
class ImportResult:
    """What an import did (or, for a dry run, would do)."""

    diff: DirectoryDiff
    threads: tuple[ThreadChange, ...]
    left: tuple[str, ...]  # JIDs that are no longer in the directory
    revoked: int  # devices revoked because their owner left
    applied: bool


def left_jids(change: DirectoryDiff) -> tuple[str, ...]:
    """Every JID that leaves the directory: removed persons' and JIDs a person gave up."""
    gone = {j for p in change.removed for j in p.jids}
    for before, after in change.changed:
        gone |= set(before.jids) - set(after.jids)
    for person in change.added:  # a JID that moved to a new person did not leave
        gone -= set(person.jids)
    for _before, after in change.changed:
        gone -= set(after.jids)
    return tuple(sorted(gone))


class DirectoryService:
    """Imports into the directory; the only writer of the directory tables (IV.2)."""

    def __init__(
        self,
        store: Store,
        *,
        max_removal_share: float,
        registry: DeviceRegistry | None = None,
    ) -> None:
        self._store = store
        self._max_share = max_removal_share
        self._registry = registry

    async def snapshot(self) -> Directory:
        async with self._store.session() as session:
            return await tables.load(session)

    async def apply(
        self,
        new: Directory,
        *,
        actor: str,
        source: str,
        dry_run: bool = False,
        force: bool = False,
    ) -> ImportResult:
        """Make the directory ``new``; TooManyRemovals (nothing changed) past the share."""
        outcome: list[ImportResult] = []
        try:
            async with self._store.session() as session:
                old = await tables.load(session)
                change = diff(old, new)
                check_removals(change, self._max_share, force=force)
                await tables.write(session, change)
                threads = await reconcile_all(session, new.groups, new.jids, actor=actor)
                left = left_jids(change)
                outcome.append(ImportResult(change, tuple(threads), left, 0, not dry_run))
                if dry_run:
                    raise _DryRun
                await append(
                    session, AuditEvent(actor, "directory.imported", _counts(change), source)
                )
                for jid in left:
                    await append(session, AuditEvent(actor, "directory.left", LEFT_REASON, jid))
                await bump(session, TOPIC)
        except _DryRun:
            return outcome[0]
        result = outcome[0]
        revoked = await self._offboard(result.left, actor)
        return ImportResult(result.diff, result.threads, result.left, revoked, True)

    async def _offboard(self, jids: Iterable[str], actor: str) -> int:
        """Revoke every device of every JID that left (III.3); idempotent on a re-run."""
        if self._registry is None:
            return 0
        count = 0
        for jid in jids:
            try:
                devices = await self._registry.revoke_all(jid, actor=actor, reason=LEFT_REASON)
            except UnknownDevice:
                continue
            count += len(devices)
        return count


def _counts(change: DirectoryDiff) -> str:
    return (
        f"+{len(change.added)} ~{len(change.changed)} -{len(change.removed)} persons; "
        f"+{len(change.memberships_added)} -{len(change.memberships_removed)} memberships"
    )
