"""What a check decides, and the contract between the relay and the pipeline.

The relay (``xmpp/relay.py``) builds a :class:`MessageContext` for every groupchat
message and asks a :class:`MessagePolicy`; the answer is a :class:`Verdict` with a
:class:`ReasonCode` and a human sentence. :data:`REFUSALS` is the one table from reason
code to the XMPP error the sender gets (RFC 6120 8.3); operators see the same reason
codes in logs, audit events and the compliance report.
"""

from __future__ import annotations

import dataclasses
import enum
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Protocol


class Action(enum.Enum):
    ACCEPT = "accept"
    MODIFY = "accept-with-changes"
    REJECT = "reject"


class ReasonCode(enum.StrEnum):
    """Why a message was refused or changed; stable codes (logs, audit, error element).

    The value is what operators and clients see: the ``reason`` of audit events and the
    element name inside a refusal's ``<error>`` (``urn:xmpp-clinic:policy:0``).
    """

    OK = "ok"
    # the stanza itself: depth and size, before anything reads it (I.12)
    STANZA_TOO_LARGE = "stanza-too-large"
    # membership (IV.2)
    NOT_A_MEMBER = "not-a-member"
    # end-to-end encryption (II.1)
    MALFORMED_OMEMO = "malformed-omemo"
    UNSUPPORTED_ENCRYPTION = "unsupported-encryption"
    PLAINTEXT_REFUSED = "plaintext-refused"
    INVALID_VALUE = "invalid-value"  # an id, tag or stamp beside OMEMO not of its shape
    FALLBACK_REPLACED = "fallback-replaced"  # a change, never a refusal: the gateway's body
    # devices (I.4, I.5, III.3)
    SENDER_DEVICE_NOT_APPROVED = "sender-device-not-approved"
    RECIPIENT_DEVICE_NOT_APPROVED = "recipient-device-not-approved"
    NO_APPROVED_RECIPIENT = "no-approved-recipient"
    # the gateway could not decide: fail closed (I.12)
    REGISTRY_UNAVAILABLE = "registry-unavailable"
    STORE_UNAVAILABLE = "store-unavailable"
    POLICY_ERROR = "policy-error"
    CLIENT_OUTDATED = "client-outdated"
    # the relay's own refusals, before or after the policy (IV.2, II.2, I.12)
    NOT_OCCUPANT = "not-occupant"
    NOT_GROUPCHAT = "not-groupchat"
    PRIVATE_MESSAGE = "private-message"
    SUBJECT_BY_ADMINS = "subject-by-admins"
    NOT_CHECKED = "not-checked"
    NOT_STORED = "not-stored"
    # a documented thread's copy could not be stored: fail closed (I.6, I.12)
    DOCUMENTATION_NOT_STORED = "documentation-not-stored"
    # part sets, "part x of y" (II.2)
    PART_DUPLICATE = "part-duplicate"
    PART_OUT_OF_RANGE = "part-out-of-range"
    PART_SET_CHANGED = "part-set-changed"


# Codes that only ever change a message: no error, no audit event (the normal path).
NOT_REFUSALS = frozenset({ReasonCode.OK, ReasonCode.FALLBACK_REPLACED})

ErrorType = Literal["auth", "cancel", "continue", "modify", "wait"]


@dataclass(frozen=True)
class Refusal:
    """The XMPP error for one reason code (RFC 6120 8.3).

    ``text`` is the sentence the sender reads when the verdict brings none of its own;
    ``tagged`` adds the reason code as ``<CODE xmlns='urn:xmpp-clinic:policy:0'/>``
    inside ``<error>`` (an application-specific condition, RFC 6120 8.3.4).
    """

    condition: str  # a defined condition of urn:ietf:params:xml:ns:xmpp-stanzas
    type: ErrorType
    text: str
    tagged: bool = True


def _policy(text: str) -> Refusal:
    # What every policy refusal has looked like on the wire since the first release.
    return Refusal("policy-violation", "modify", text)


NOT_OCCUPANT_TEXT = "Only occupants of this thread may send to it."
NOT_GROUPCHAT_TEXT = (
    "Care threads accept only group messages from people who have joined: "
    "join the thread, then send."
)
NOT_CHECKED_TEXT = "The message could not be checked and was not delivered; please retry."
NOT_STORED_TEXT = "The message could not be archived and was not delivered; please retry."

# The default for a code without an entry of its own: the policy-violation every policy
# refusal has carried so far.
DEFAULT_REFUSAL = _policy("This message is not allowed in care threads.")

REFUSALS: Mapping[ReasonCode, Refusal] = MappingProxyType(
    {
        ReasonCode.NOT_A_MEMBER: _policy(
            "You are not a member of this care thread; ask its owner to add you."
        ),
        ReasonCode.STANZA_TOO_LARGE: _policy("The stanza is too large or too deeply nested."),
        ReasonCode.CLIENT_OUTDATED: _policy(
            "Your messaging app or operating system is out of support; "
            "update it to send to care threads."
        ),
        ReasonCode.MALFORMED_OMEMO: _policy("The OMEMO element could not be read."),
        ReasonCode.UNSUPPORTED_ENCRYPTION: _policy(
            "Care threads accept OMEMO encryption only; enable OMEMO for this chat."
        ),
        ReasonCode.PLAINTEXT_REFUSED: _policy(
            "Unencrypted messages are not allowed in care threads; enable OMEMO and resend."
        ),
        ReasonCode.INVALID_VALUE: _policy(
            "An id, language tag or timestamp in this message does not have its defined form."
        ),
        ReasonCode.SENDER_DEVICE_NOT_APPROVED: _policy(
            "Your device is not approved by hospital IT for care threads."
        ),
        ReasonCode.RECIPIENT_DEVICE_NOT_APPROVED: _policy(
            "The message is encrypted for devices that are not approved."
        ),
        ReasonCode.NO_APPROVED_RECIPIENT: _policy(
            "None of the devices this message is encrypted for is approved."
        ),
        ReasonCode.REGISTRY_UNAVAILABLE: _policy(
            "The device registry is not available; try again shortly."
        ),
        ReasonCode.STORE_UNAVAILABLE: _policy(
            "The gateway could not record this message; try again shortly."
        ),
        ReasonCode.POLICY_ERROR: _policy("The gateway could not check it."),
        ReasonCode.NOT_OCCUPANT: Refusal(
            "not-acceptable", "cancel", NOT_OCCUPANT_TEXT, tagged=False
        ),
        ReasonCode.NOT_GROUPCHAT: Refusal("forbidden", "cancel", NOT_GROUPCHAT_TEXT, tagged=False),
        ReasonCode.PRIVATE_MESSAGE: Refusal(
            "forbidden", "cancel", "Private messages are disabled in care threads.", tagged=False
        ),
        ReasonCode.SUBJECT_BY_ADMINS: Refusal(
            "forbidden", "auth", "The subject is set by the administrators.", tagged=False
        ),
        ReasonCode.NOT_CHECKED: Refusal(
            "internal-server-error", "wait", NOT_CHECKED_TEXT, tagged=False
        ),
        ReasonCode.NOT_STORED: Refusal(
            "internal-server-error", "wait", NOT_STORED_TEXT, tagged=False
        ),
        ReasonCode.DOCUMENTATION_NOT_STORED: Refusal(
            "internal-server-error",
            "wait",
            "This thread is documented in the patient record and the documentation copy "
            "could not be stored, so the message was not delivered; please retry.",
        ),
        ReasonCode.PART_DUPLICATE: _policy("This part of the set was already received."),
        ReasonCode.PART_OUT_OF_RANGE: _policy(
            "A part number must be between 1 and the number of parts of its set."
        ),
        ReasonCode.PART_SET_CHANGED: _policy(
            "This part names another number of parts or sender than its set."
        ),
    }
)


def refusal(reason: ReasonCode | str) -> Refusal:
    """The XMPP error for ``reason``; :data:`DEFAULT_REFUSAL` for a code not in the table."""
    try:
        code = ReasonCode(reason)
    except ValueError:
        return DEFAULT_REFUSAL
    return REFUSALS.get(code, DEFAULT_REFUSAL)


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
    reason: ReasonCode = ReasonCode.OK
    text: str = ""  # one human sentence for the sender / operator
    stanza: ET.Element | None = None  # the replacement <message> when action is MODIFY
    notices: tuple[str, ...] = field(default=())  # sentences for the sender; not errors

    @property
    def rejected(self) -> bool:
        return self.action is Action.REJECT

    @property
    def refusal(self) -> Refusal:
        """The XMPP error to send for this verdict: the table's, with the verdict's text."""
        found = refusal(self.reason)
        return dataclasses.replace(found, text=self.text) if self.text else found

    @classmethod
    def accept(cls) -> Verdict:
        return cls(Action.ACCEPT)

    @classmethod
    def reject(cls, reason: ReasonCode, text: str) -> Verdict:
        return cls(Action.REJECT, reason, text)


class MessagePolicy(Protocol):
    """Anything that can decide on a message: the full pipeline, or a test double."""

    async def evaluate(self, ctx: MessageContext) -> Verdict: ...
