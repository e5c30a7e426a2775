"""Erasure: delete a thread, erase a person; a signed receipt says what went and what stays (I.7).

``threads delete NAME``: members are removed first (a running gateway kicks them, 321),
then the archive and the thread's documentation copies are purged in batches, then the
thread and everything naming it goes (delivery records and part sets by its name):
audit events that named it are pseudonymised and the audit chain re-chained (old and new
head in the receipt). ``erase --person JID``: memberships, devices and notices are
deleted, and so are their directory entry, delivery records and part sets
(:mod:`.person`) and, where the server offers an interface, their whole MAM archive on the
server (what it could not purge is in the receipt); archived messages and documentation
copies the person sent and audit events naming them are pseudonymised and re-chained;
every other table is scrubbed (:mod:`.scrub`). What stays: the signed receipt and the
one audit event of the erasure, which name the subject (GDPR Art. 5(2)).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.purge import purge_through
from xmpp_clinic.archive.rewrite import rewrite_thread, threads_naming
from xmpp_clinic.retention.linked import purge_documentation
from xmpp_clinic.retention.person import (
    erase_completeness,
    erase_from_directory,
    pseudonymise_documentation,
)
from xmpp_clinic.retention.receipts import ReceiptBook, SignedReceipt
from xmpp_clinic.retention.scrub import delete_keyed, scrub_tables, scrubber
from xmpp_clinic.retention.server_mam import ServerArchive, ServerRequest
from xmpp_clinic.store import Store
from xmpp_clinic.store.changes import bump
from xmpp_clinic.store.models.devices import DeviceNoticeRecord, DeviceRecord
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.records import DocumentationCopy
from xmpp_clinic.store.models.threads import Member, Thread
from xmpp_clinic.threads import ThreadNotFound

THREAD_DELETED = "thread.deleted"
PERSON_ERASED = "person.erased"
# Handled by their own rules here, or allowed to name the subject (the receipts).
_OWN_RULES = frozenset(
    {"audit_events", "audit_head", "thread_messages", "deletion_receipts", "archive_anchors",
     "thread_members", "devices", "device_notices", "alembic_version", "documentation"}
)  # fmt: skip
KEPT_THREAD = (
    "This receipt and the audit event thread.deleted name the thread (accountability, "
    "GDPR Art. 5(2)); earlier audit events that named it now carry a pseudonym."
)
KEPT_PERSON = (
    "Messages the person sent stay in the care-thread archives as medical documentation "
    "(BGB 630f), under a pseudonym; their content is end-to-end encrypted and was not read. "
    "Documentation copies of what they wrote stay in the patient-record store under the "
    "pseudonym; their encrypted content was not changed. The hospital directory's source "
    "(LDAP, CSV) was not changed: a later sync brings the person back unless they are "
    "removed there. Server archives not purged are listed as server-archive items with "
    "done=false. This receipt and the audit event person.erased name the person "
    "(GDPR Art. 5(2))."
)


class NothingToErase(LookupError):
    """The person is named nowhere in the store."""


@dataclass(frozen=True)
class Erasure:
    receipt: SignedReceipt
    pseudonym: str


class Eraser:
    """Deletes threads and erases persons, each with a signed receipt (I.7, II.3)."""

    def __init__(
        self,
        store: Store,
        receipts: ReceiptBook,
        *,
        batch: int = 2000,
        server: ServerArchive | None = None,
        component: str | None = None,
    ) -> None:
        self._store = store
        self._receipts = receipts
        self._batch = batch
        self._server = server  # with ``component``: members' server copies go too
        self._component = component

    async def delete_thread(self, name: str, *, actor: str, settle: float = 2.0) -> Erasure:
        """Kick the members, purge the archive, delete the thread (I.7, IV.2).

        ``settle``: seconds between removing the members and deleting the thread, so a
        running gateway (which polls every second) kicks them while the thread still
        exists.
        """
        async with self._store.session() as session:
            thread = await session.scalar(select(Thread).where(Thread.name == name))
            if thread is None:
                raise ThreadNotFound(f"no thread named {name!r}")
            thread_id = thread.id
            jids = list(
                await session.scalars(select(Member.jid).where(Member.thread_id == thread_id))
            )
            await session.execute(delete(Member).where(Member.thread_id == thread_id))
            members = len(jids)
            await bump(session, "threads")
        server: list[dict[str, Any]] = []
        if self._server is not None and self._component is not None:
            peer = f"{name}@{self._component}"
            done = await self._server.purge([ServerRequest(j, peer) for j in jids])
            server = [{"what": "server-archive", **r.as_json()} for r in done]
        if members and settle > 0:
            await asyncio.sleep(settle)
        async with self._store.session() as session:
            through = await session.scalar(
                select(func.max(ArchivedMessage.seq)).where(ArchivedMessage.thread_id == thread_id)
            )
        purged = await purge_through(self._store, thread_id, int(through or 0), batch=self._batch)
        async with self._store.session() as session:
            last = await session.scalar(
                select(func.max(DocumentationCopy.position)).where(DocumentationCopy.thread == name)
            )
        copies = await purge_documentation(self._store, name, int(last or 0), batch=self._batch)
        pseudonym = f"erased-{secrets.token_hex(6)}"
        scrub = scrubber(name, pseudonym)
        async with self._store.session() as session:
            late = await session.execute(
                delete(ArchivedMessage).where(ArchivedMessage.thread_id == thread_id)
            )
            late_copies = await session.execute(
                delete(DocumentationCopy).where(DocumentationCopy.thread == name)
            )
            await session.execute(delete(Thread).where(Thread.id == thread_id))
            keyed = await delete_keyed(session, "thread", name, _OWN_RULES)
            rewritten = await audit.rewrite(session, scrub)
            others = await scrub_tables(session, name, scrub, _OWN_RULES)
            items: list[dict[str, Any]] = [
                {"what": "thread", "thread": name, "members_removed": members, "rows": keyed},
                {"what": "messages", "thread": name,
                 **(purged.as_json() if purged else {"count": 0}),
                 "late_messages": int(late.rowcount)},  # type: ignore[attr-defined]
                {"what": "audit-pseudonymised", "pseudonym": pseudonym, **rewritten.as_json()},
            ]  # fmt: skip
            if copies is not None or late_copies.rowcount:  # type: ignore[attr-defined]
                items.append(
                    {"what": "documentation", "thread": name,
                     **(copies.as_json() if copies else {"count": 0}),
                     "late_copies": int(late_copies.rowcount)}  # type: ignore[attr-defined]
                )  # fmt: skip
            if others:
                items.append({"what": "rows-pseudonymised", "columns": others})
            items += server
            receipt = self._receipts.sign(
                "thread-delete", actor, items, rule="request", kept=KEPT_THREAD
            )
            session.add(self._receipts.row(receipt))
            await audit.append(
                session,
                audit.AuditEvent(actor, THREAD_DELETED, "request", name, f"receipt:{receipt.id}"),
            )
            await bump(session, "threads")
        self._receipts.write_file(receipt)
        return Erasure(receipt, pseudonym)

    async def erase_person(self, jid: str, *, actor: str) -> Erasure:
        """Remove or pseudonymise everything naming ``jid`` (I.7, II.3)."""
        pseudonym = f"erased-{secrets.token_hex(6)}@invalid"
        scrub = scrubber(jid, pseudonym)
        server: list[dict[str, Any]] = []
        if self._server is not None:  # the person's own server archive, every peer
            done = await self._server.purge([ServerRequest(jid, "")])
            server = [{"what": "server-archive", **r.as_json()} for r in done]
        async with self._store.session() as session:
            memberships = await session.execute(delete(Member).where(Member.jid == jid))
            devices = await session.execute(delete(DeviceRecord).where(DeviceRecord.jid == jid))
            notices = await session.execute(
                delete(DeviceNoticeRecord).where(DeviceNoticeRecord.jid == jid)
            )
            threads = []
            for thread_id in await threads_naming(session, jid):
                changed = await rewrite_thread(
                    session, thread_id, scrub, sender=jid, nick=pseudonym.partition("@")[0]
                )
                if changed is not None:
                    threads.append(
                        {"thread_id": thread_id, "messages": list(changed.seqs),
                         "old_head": changed.old_head, "new_head": changed.new_head}
                    )  # fmt: skip
            directory, other_jids = await erase_from_directory(session, jid)
            completeness = await erase_completeness(session, jid)
            documentation = await pseudonymise_documentation(session, jid, scrub)
            keyed = await delete_keyed(session, "jid", jid, _OWN_RULES)
            rewritten = await audit.rewrite(session, scrub)
            others = await scrub_tables(session, jid, scrub, _OWN_RULES)
            counts = {
                "memberships": int(memberships.rowcount),  # type: ignore[attr-defined]
                "devices": int(devices.rowcount),  # type: ignore[attr-defined]
                "notices": int(notices.rowcount),  # type: ignore[attr-defined]
                **directory,
                **completeness,
                **keyed,
            }
            person = {"what": "person", "person": jid, "pseudonym": pseudonym, "deleted": counts}
            if other_jids:  # the directory person had more JIDs: erase those separately
                person["other_jids_removed_from_directory"] = other_jids
            items: list[dict[str, Any]] = [
                person,
                {"what": "messages-pseudonymised", "threads": threads},
                {"what": "audit-pseudonymised", **rewritten.as_json()},
            ]
            if documentation:
                items.append({"what": "documentation-pseudonymised", "threads": documentation})
            if others:
                items.append({"what": "rows-pseudonymised", "columns": others})
            items += server
            receipt = self._receipts.sign("erasure", actor, items, rule="request", kept=KEPT_PERSON)
            session.add(self._receipts.row(receipt))
            await audit.append(
                session,
                audit.AuditEvent(actor, PERSON_ERASED, "request", jid, f"receipt:{receipt.id}"),
            )
            for topic in ("threads", "devices", "archive"):
                await bump(session, topic)
        self._receipts.write_file(receipt)
        return Erasure(receipt, pseudonym)
