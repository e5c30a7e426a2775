"""What a check decides, and the contract between the relay and the pipeline.

The relay (``xmpp/threads.py``) builds a :class:`MessageContext` for every groupchat
message and asks a :class:`MessagePolicy`; the answer is a :class:`Verdict` with a reason
code and a human sentence. One place (the relay) maps reasons to XMPP errors; operators
see the same reason codes in logs, audit events and the compliance report.
"""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Protocol


class Action(enum.Enum):
    ACCEPT = "accept"
    MODIFY = "accept-with-changes"
    REJECT = "reject"


@dataclass(frozen=True)
class MessageContext:
    """A message offered to a thread, as plain data (no slixmpp objects)."""

    thread: str  # the thread's bare JID
    sender: str  # the sender's real bare JID
    members: frozenset[str]  # bare JIDs of the thread's current members
    stanza: ET.Element  # the <message> as received; checks must not mutate it


@dataclass(frozen=True)
class Verdict:
    """The outcome of the pipeline for one message."""

    action: Action
    reason: str = "ok"  # a stable reason code, e.g. "plaintext-refused"
    text: str = ""  # one human sentence for the sender / operator
    stanza: ET.Element | None = None  # the replacement <message> when action is MODIFY
    notices: tuple[str, ...] = field(default=())  # sentences for the sender; not errors

    @property
    def rejected(self) -> bool:
        return self.action is Action.REJECT

    @classmethod
    def accept(cls) -> Verdict:
        return cls(Action.ACCEPT)

    @classmethod
    def reject(cls, reason: str, text: str) -> Verdict:
        return cls(Action.REJECT, reason, text)


class MessagePolicy(Protocol):
    """Anything that can decide on a message: the full pipeline, or a test double."""

    async def evaluate(self, ctx: MessageContext) -> Verdict: ...
