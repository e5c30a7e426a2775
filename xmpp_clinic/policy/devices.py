"""Only approved devices of members may send or read (I.4, I.5, III.3, II.1).

The sender's device (``header/@sid``) must be approved for the sender. Every ``<key>``
must be for an approved device of a current member: legacy keys carry no JID, so their
``rid`` is looked up among the members' devices; OMEMO 2 keys are grouped by JID, so the
(JID, rid) pair is checked. Keys for anything else are removed (``strip``) or make the
message refused (``reject``). Removing a key harms no other recipient: each key is an
independent encryption of the message key. A device with several ``<key>`` copies (as
Profanity sends) is decided once, and every copy goes with it or stays.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime

from xmpp_clinic.omemo import OmemoHeader, RecipientKey, strip_keys
from xmpp_clinic.policy.verdict import Action, ReasonCode, Verdict
from xmpp_clinic.registry.model import Device, DeviceKey, DeviceState
from xmpp_clinic.registry.snapshot import RegistrySnapshot


@dataclass(frozen=True)
class DeviceFacts:
    """Who is talking where: plain data the device check needs besides the header."""

    sender: str  # bare, case-folded
    members: frozenset[str]  # bare, case-folded; includes the sender
    now: datetime
    unapproved_recipient: str = "strip"  # policy.unapproved_recipient: "strip" | "reject"


@dataclass(frozen=True)
class DeviceCheck:
    """The device check's verdict and what the pipeline needs to follow it up."""

    verdict: Verdict
    sender_known: bool  # False: the registry has never seen this device -> discover
    unreadable_for: tuple[str, ...] = ()  # members with an approved device that got no key
    unknown_recipients: tuple[RecipientKey, ...] = ()  # keys for devices never seen -> discover


def _sender_refusal(device: Device | None, sid: int) -> Verdict:
    if device is None:
        why = "is not registered yet; hospital IT must approve it before it can be used"
    elif device.state is DeviceState.PENDING:
        why = "is waiting for approval by hospital IT"
    elif device.state is DeviceState.REVOKED:
        why = "was revoked by hospital IT"
    else:
        why = "approval has expired; ask hospital IT to re-validate it"
    return Verdict.reject(ReasonCode.SENDER_DEVICE_NOT_APPROVED, f"Your device {sid} {why}.")


def _allowed(key: RecipientKey, ns: str, facts: DeviceFacts, snap: RegistrySnapshot) -> bool:
    if key.jid is None:  # legacy: whose device is this rid? it must be a member's
        return bool(snap.usable_owners(ns, key.rid, facts.now) & facts.members)
    return key.jid in facts.members and key.rid in snap.usable_ids(key.jid, ns, facts.now)


def _unreadable(
    header: OmemoHeader, facts: DeviceFacts, snap: RegistrySnapshot, kept: list[RecipientKey]
) -> tuple[str, ...]:
    """Members (other than the sender) with an approved, announced device that got no key."""
    ns = header.namespace
    keyed: dict[str | None, set[int]] = {}
    for key in kept:
        keyed.setdefault(key.jid, set()).add(key.rid)
    missing: list[str] = []
    for member in sorted(facts.members - {facts.sender}):
        approved = snap.active_usable_ids(member, ns, facts.now)
        got = keyed.get(None, set()) | keyed.get(member, set())
        if not approved or approved - got:
            missing.append(member)
    return tuple(missing)


def check_devices(
    header: OmemoHeader, message: ET.Element, facts: DeviceFacts, snap: RegistrySnapshot
) -> DeviceCheck:
    """Decide on one OMEMO message from the registry snapshot (I.4, I.5, III.3)."""
    ns = header.namespace
    sender_device = snap.get(DeviceKey(facts.sender, ns, header.sid))
    if sender_device is None or not sender_device.usable(facts.now):
        verdict = _sender_refusal(sender_device, header.sid)
        return DeviceCheck(verdict, sender_known=sender_device is not None)
    kept = [key for key in header.keys if _allowed(key, ns, facts, snap)]
    unreadable = _unreadable(header, facts, snap, kept)
    if len(kept) == len(header.keys):
        return DeviceCheck(Verdict.accept(), True, unreadable)
    kept_set = set(kept)
    removed = [key for key in header.keys if key not in kept_set]
    unknown = tuple(key for key in removed if not snap.knows(ns, key.rid, key.jid))
    ids = ", ".join(str(key.rid) for key in removed[:10])
    if facts.unapproved_recipient == "reject":
        text = f"The message is encrypted for devices that are not approved ({ids})."
        verdict = Verdict.reject(ReasonCode.RECIPIENT_DEVICE_NOT_APPROVED, text)
        return DeviceCheck(verdict, True, unknown_recipients=unknown)
    if not kept:
        text = "None of the devices this message is encrypted for is approved."
        verdict = Verdict.reject(ReasonCode.NO_APPROVED_RECIPIENT, text)
        return DeviceCheck(verdict, True, unknown_recipients=unknown)
    stripped = strip_keys(message, removed)
    text = f"Removed {len(removed)} key(s) for devices that are not approved ({ids})."
    verdict = Verdict(Action.MODIFY, ReasonCode.RECIPIENT_DEVICE_NOT_APPROVED, text, stripped)
    return DeviceCheck(verdict, True, unreadable, unknown)
