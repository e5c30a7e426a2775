"""Re-applying deletions after a restore: an old backup never resurrects deleted data (I.7, I.9).

Every purge, thread deletion and erasure leaves a signed receipt in
``retention.receipts_directory``, apart from the store. After a restore, each receipt
signed by the gateway's key and dated after the backup is applied again, oldest first:
purged message ranges (and the anchor must match) with their delivery records, part sets
and documentation copies (whose anchor must match too), audit prunes, device clean-ups,
deleted threads, erased persons. A receipt whose signature fails stops the restore.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select

from xmpp_clinic.archive import audit
from xmpp_clinic.archive.purge import purge_through
from xmpp_clinic.retention.erasure import Eraser
from xmpp_clinic.retention.linked import (
    deliveries_before,
    deliveries_of,
    documentation_anchor,
    forget_settled_sets,
    purge_deliveries,
    purge_documentation,
    purge_part_sets,
)
from xmpp_clinic.retention.purge import forget_devices
from xmpp_clinic.retention.receipts import ReceiptBook, ReceiptInvalid, SignedReceipt, verify
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.retention import ArchiveAnchor
from xmpp_clinic.store.models.threads import Thread

REAPPLIED = "backup.deletions-reapplied"


class AnchorMismatch(Exception):
    """A re-applied purge ended on another digest than its receipt says: not the same chain."""


@dataclass
class Reapplied:
    receipts: list[str] = field(default_factory=list)
    messages: int = 0
    threads: int = 0
    persons: int = 0


async def reapply(
    store: Store,
    receipts: list[SignedReceipt],
    public: Ed25519PublicKey,
    book: ReceiptBook,
    *,
    since: datetime,
    actor: str,
) -> Reapplied:
    """Apply every receipt dated after ``since`` again, oldest first."""
    done = Reapplied()
    eraser = Eraser(store, book)
    for receipt in sorted(receipts, key=lambda r: r.at):
        if receipt.at <= since:
            continue
        try:
            verify(receipt, public)
        except ReceiptInvalid as exc:
            raise ReceiptInvalid(f"receipt {receipt.id}: {exc}") from None
        for item in receipt.body.get("items", []):
            await _apply(store, eraser, receipt.kind, item, done, actor)
        done.receipts.append(receipt.id)
    if done.receipts:
        async with store.session() as session:
            note = " ".join(done.receipts)[:500]
            await audit.append(session, audit.AuditEvent(actor, REAPPLIED, "restore", "", note))
    return done


async def _apply(store: Store, eraser: Eraser, kind: str, item: dict[str, object],
                 done: Reapplied, actor: str) -> None:  # fmt: skip
    what = item.get("what")
    if kind == "purge" and what == "messages":
        thread_id = await _thread_id(store, str(item["thread"]))
        if thread_id is None:
            return
        purged = await purge_through(store, thread_id, int(str(item["last_seq"])), batch=5000)
        done.messages += purged.count if purged else 0
        async with store.session() as session:
            found = await session.get(ArchiveAnchor, thread_id)
        same_seq = found is not None and found.seq == item["last_seq"]
        if same_seq and found is not None and found.digest.hex() != item["anchor"]:
            raise AnchorMismatch(f"thread {item['thread']}: anchor differs from the receipt")
    elif kind == "purge" and what in ("delivery-records", "part-sets", "documentation"):
        await _apply_linked(store, item)
    elif kind == "purge" and what == "audit-events":
        async with store.session() as session:
            await audit.prune_through(session, int(str(item["last_seq"])))
    elif kind == "purge" and what == "devices":
        pending = datetime.fromisoformat(str(item["pending_cutoff"]))
        inactive = datetime.fromisoformat(str(item["inactive_cutoff"]))
        async with store.session() as session:
            await forget_devices(session, pending, inactive)
    elif kind == "thread-delete" and what == "thread":
        name = str(item["thread"])
        if await _thread_id(store, name) is not None:
            await eraser.delete_thread(name, actor=actor, settle=0)
            done.threads += 1
    elif kind == "erasure" and what == "person":
        await eraser.erase_person(str(item["person"]), actor=actor)
        done.persons += 1


async def _apply_linked(store: Store, item: dict[str, object]) -> None:
    """Delivery records, part sets and documentation copies a purge removed (I.7)."""
    what, thread = item["what"], item.get("thread")
    cutoff = datetime.fromisoformat(str(item["cutoff"])) if "cutoff" in item else None
    through = int(str(item.get("through_seq", 0)))
    if what == "delivery-records":
        where = deliveries_of(str(thread), through) if thread else None
        if where is None and cutoff is not None:
            where = deliveries_before(cutoff)
        if where is not None:
            await purge_deliveries(store, where, batch=5000)
    elif what == "part-sets" and cutoff is not None:
        if thread:
            thread_id = await _thread_id(store, str(thread))
            await purge_part_sets(store, str(thread), thread_id, through=through, cutoff=cutoff)
        else:
            await forget_settled_sets(store, cutoff)
    elif what == "documentation":
        last = int(str(item["last_position"]))
        await purge_documentation(store, str(thread), last, batch=5000)
        found = await documentation_anchor(store, str(thread))
        if found is not None and found[0] == last and found[1].hex() != item["anchor"]:
            raise AnchorMismatch(f"documentation of {thread}: anchor differs from the receipt")


async def _thread_id(store: Store, name: str) -> int | None:
    async with store.session() as session:
        return await session.scalar(select(Thread.id).where(Thread.name == name))
