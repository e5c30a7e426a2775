"""Membership changes in the audit log: who let whom into which thread, and when (IV.2, IV.4).

Every change the thread service makes appends one content-free event to the audit chain
(:mod:`xmpp_clinic.archive.audit`) in the same transaction as the change, so
``xmpp-clinic audit events`` shows it and a change without its event cannot be
committed. An event names the actor, the thread (``subject``: its name) and, for member
changes, the member's bare JID (``note``). Titles are never recorded: a title is free text
an operator types and may name a patient (II.3).
"""

from __future__ import annotations

import enum

from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.archive.audit import AuditEvent, append

# The actor when a caller does not say who asked (never for a person's own request).
UNKNOWN_ACTOR = "unknown"


class ThreadEvent(enum.StrEnum):
    """The ``action`` of a thread's audit events; a stable operator vocabulary."""

    CREATED = "thread.created"  # reason: the kind, "group" or "direct"
    MEMBER_ADDED = "thread.member-added"  # reason: the new affiliation
    MEMBER_CHANGED = "thread.member-changed"  # reason: "<before>-to-<after>"
    MEMBER_REMOVED = "thread.member-removed"  # reason: the affiliation they had
    TITLE_CHANGED = "thread.title-changed"  # reason: "renamed"; the title is not recorded
    DOCUMENTED = "thread.documented"  # reason: "on" or "off" (I.6)


async def record(
    session: AsyncSession,
    actor: str,
    kind: ThreadEvent,
    thread: str,
    reason: str,
    member: str = "",
) -> None:
    """Append one thread event inside the caller's transaction (IV.2, IV.4)."""
    await append(session, AuditEvent(actor, kind.value, reason, thread, member))
