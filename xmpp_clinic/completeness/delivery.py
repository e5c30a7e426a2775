"""Who has each message: handed over live, fetched by MAM, read; and who must be told (II.2).

The gateway cannot read a message, but it relays and archives every one, so it knows
per message and member whether a joined session got it live, whether the member's MAM
query returned it later, and -- where the client sends XEP-0333 displayed markers to the
room -- whether it was read (a marker for one message reads every earlier one too). A
member who has neither received nor fetched a message ``delivery.notify_after_minutes``
after it was relayed gets one direct notice naming only the thread's title; the sender
can ask "who has my message?". Pure: plain data in, decisions out.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from xmpp_clinic.omemo import NAMESPACES


class Status(enum.StrEnum):
    """The furthest a message got with one member."""

    READ = "read"
    FETCHED = "fetched"
    DELIVERED = "delivered"
    NOT_YET = "not yet"


@dataclass(frozen=True)
class Delivery:
    """One message and one member (no content, II.1)."""

    thread: str
    seq: int
    stanza_id: str
    sender: str
    member: str
    at: datetime
    delivered_at: datetime | None = None
    fetched_at: datetime | None = None
    read_at: datetime | None = None
    notified_at: datetime | None = None

    @property
    def status(self) -> Status:
        if self.read_at is not None:
            return Status.READ
        if self.fetched_at is not None:
            return Status.FETCHED
        if self.delivered_at is not None:
            return Status.DELIVERED
        return Status.NOT_YET

    @property
    def since(self) -> datetime | None:
        """When it reached its status (None: not yet)."""
        return self.read_at or self.fetched_at or self.delivered_at

    def owes_notice(self, now: datetime, after_minutes: float) -> bool:
        """Neither received nor fetched (nor read) that long after relaying, not yet told."""
        return (
            self.status is Status.NOT_YET
            and self.notified_at is None
            and now - self.at >= timedelta(minutes=after_minutes)
        )


def tracked(stanza: ET.Element) -> bool:
    """Only messages someone is meant to read are tracked: an OMEMO payload (either
    version). Chat states, markers, receipts and key transport are not (no notices)."""
    return any(
        stanza.find(f"{{{uri}}}encrypted/{{{uri}}}payload") is not None for uri in NAMESPACES
    )


def notices_due(
    rows: Iterable[Delivery], now: datetime, after_minutes: float
) -> list[tuple[str, str]]:
    """(thread, member) pairs owed one notice now, each once, in the order first owed."""
    due: dict[tuple[str, str], None] = {}
    for row in sorted(rows, key=lambda r: r.at):
        if row.owes_notice(now, after_minutes):
            due.setdefault((row.thread, row.member), None)
    return list(due)


def unread_notice(title: str) -> str:
    """The direct notice: the thread's title only, never content or the sender (II.1)."""
    return f"There are unread messages in {title}."


def report_lines(rows: Iterable[Delivery]) -> list[str]:
    """One line per member: "bob@hospital.test: read 2026-03-02 14:05 UTC"."""
    lines = []
    for row in sorted(rows, key=lambda r: r.member):
        when = row.since
        shown = f" {when:%Y-%m-%d %H:%M} UTC" if when is not None else ""
        lines.append(f"{row.member}: {row.status}{shown}")
    return lines
