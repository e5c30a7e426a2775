"""Case threads per admission on mapped wards (``[bridge.adt.ward_threads]``) (I.6, IV.2).

An A01 for a ward the config maps to a directory group opens one thread for that
admission: named after the group and the visit number, titled without the patient's
name, bound to the case (its transcript belongs to that one patient's record) and to the
ward's group (its members are the ward's staff, following the directory), flagged
documented. Why not one ward thread bound to every case: a thread's transcript must
belong to one patient's record, and a ward thread holds many patients.

A repeated A01 finds the thread it opened before and changes nothing; an unmapped ward
opens nothing. Discharge, update and merge act on the case (:mod:`.cases`), so the
thread follows them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadExists, ThreadService

MAX_NAME = 64
_NOT_IN_NAME = re.compile(r"[^a-z0-9._-]+")


def thread_name(group: str, visit: str) -> str:
    """The case thread's name: ``<group>-<visit>`` in thread-name letters (pure).

    A visit number that does not fit as it is (other letters, too long) gets a short
    digest of the original, so two visit numbers never share a name by being spelled
    alike (``V/1`` and ``v-1``).
    """
    slug = _NOT_IN_NAME.sub("-", visit.lower()).strip("-._") or "case"
    name = f"{group}-{slug}"
    if slug == visit.lower() and len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(visit.encode()).hexdigest()[:8]
    return f"{group[:40]}-{slug[:14].strip('-._') or 'case'}-{digest}"


def thread_title(ward: str, visit: str) -> str:
    """The title clients show: ward and visit, never the patient's name (II.3)."""
    return f"Ward {ward}, case {visit}"


class WardThreads:
    """Open the case thread of an admission on a mapped ward (``ward_threads``)."""

    def __init__(self, store: Store, ward_threads: Mapping[str, str], *, actor: str) -> None:
        self._groups = dict(ward_threads)
        self._cases = CaseBook(store)
        # user_domains: none are needed (members come from the group); directory: groups.
        self._threads = ThreadService(store, user_domains=(), directory=True)
        self._actor = actor

    def group_of(self, ward: str) -> str | None:
        """The directory group of ``ward``'s staff; None for an unmapped ward."""
        return self._groups.get(ward)

    async def open(self, visit: str, ward: str) -> str | None:
        """Create and bind the case thread of ``visit`` on ``ward``; its name, or None
        for an unmapped ward. Idempotent: a thread opened before is kept as it is.

        InvalidThread (e.g. the group is not in the directory) leaves nothing behind:
        the thread is created in one transaction with its group and flag.
        """
        group = self.group_of(ward)
        if group is None:
            return None
        for name in (thread_name(group, visit), _spare_name(group, visit)):
            try:
                await self._threads.create(
                    name, thread_title(ward, visit), [], groups=[group], documented=True,
                    actor=self._actor,
                )  # fmt: skip
            except ThreadExists:
                bound = await self._cases.case_of(name)
                if bound is not None and bound.visit == visit:
                    return name  # the same admission again: nothing changes
                if bound is not None or not await self._ours(name, group):
                    continue  # another admission's or someone's own thread: the spare
            await self._cases.bind(name, visit, actor=self._actor)
            return name
        raise ThreadExists(f"no free thread name for case {visit!r} on ward {ward!r}")

    async def transfer(self, visit: str, old_ward: str, new_ward: str) -> list[str]:
        """A08 moved the case to ``new_ward``: its case threads follow that ward's staff
        (the new group is bound before the old one is unbound, so the thread is never
        empty). A move to an unmapped ward leaves the threads with the staff they have;
        a new group missing from the directory raises InvalidThread and changes nothing.
        The moved threads' names."""
        old_group, new_group = self.group_of(old_ward), self.group_of(new_ward)
        if new_group is None or old_group is None or new_group == old_group:
            return []
        moved = []
        for name in await self._cases.threads_of(visit):
            if old_group not in await self._threads.groups_of(name):
                continue  # bound to the case by hand, not a ward's case thread
            await self._threads.bind(name, new_group, actor=self._actor)
            await self._threads.unbind(name, old_group, actor=self._actor)
            moved.append(name)
        return moved

    async def _ours(self, name: str, group: str) -> bool:
        """Whether ``name`` is a case thread this opened but did not bind (interrupted)."""
        info = await self._threads.get(name)
        return info.documented and group in await self._threads.groups_of(name)


def _spare_name(group: str, visit: str) -> str:
    """The name used when :func:`thread_name` is taken by another admission."""
    digest = hashlib.sha256(f"spare:{visit}".encode()).hexdigest()[:8]
    slug = _NOT_IN_NAME.sub("-", visit.lower())[:14].strip("-._") or "case"
    return f"{group[:40]}-{slug}-{digest}"
