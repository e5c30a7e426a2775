"""Only approved devices of members send or read (I.4, I.5, III.3), decided over literal stanzas."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS, OmemoHeader, parse_header
from xmpp_clinic.policy.devices import DeviceCheck, DeviceFacts, check_devices
from xmpp_clinic.policy.verdict import Action
from xmpp_clinic.registry.model import Device, DeviceKey, DeviceState
from xmpp_clinic.registry.snapshot import RegistrySnapshot

pytestmark = pytest.mark.requirement("I.4", "I.5", "III.3")

NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
ALICE, BOB, MALLORY = "alice@h.test", "bob@h.test", "mallory@h.test"


def dev(
    jid: str,
    device_id: int,
    state: DeviceState = DeviceState.APPROVED,
    ns: str = LEGACY_NS,
    valid_until: datetime | None = None,
    active: bool = True,
) -> Device:
    return Device(DeviceKey(jid, ns, device_id), state, None, None, active, valid_until=valid_until)


REGISTRY = RegistrySnapshot(
    [
        dev(ALICE, 111),
        dev(ALICE, 112),
        dev(ALICE, 113, DeviceState.PENDING),
        dev(ALICE, 114, DeviceState.REVOKED),
        dev(ALICE, 115, valid_until=NOW - timedelta(minutes=1)),
        dev(BOB, 201),
        dev(BOB, 202, DeviceState.PENDING),
        dev(MALLORY, 301),
        dev(ALICE, 511, ns=OMEMO2_NS),
        dev(BOB, 601, ns=OMEMO2_NS),
        dev(MALLORY, 111, ns=OMEMO2_NS),
    ]
)


def key(rid: int, version: int = 0x33) -> str:
    """A key of the size and framing OMEMO produces, different for every device."""
    return base64.b64encode(bytes([version]) + rid.to_bytes(4, "big") * 20).decode()


IV = base64.b64encode(bytes(12)).decode()
BLOCK = base64.b64encode(bytes(16)).decode()


def legacy(sid: int, *rids: int, payload: bool = True) -> str:
    keys = "".join(f'<key rid="{rid}">{key(rid)}</key>' for rid in rids)
    return (
        '<message xmlns="jabber:component:accept" type="groupchat" id="m1" to="ward@clinic.h.test">'
        f'<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="{sid}">{keys}'
        f"<iv>{IV}</iv></header>{'<payload>UA==</payload>' if payload else ''}</encrypted>"
        "<body>OMEMO fallback</body></message>"
    )


def omemo2(sid: int, groups: dict[str, tuple[int, ...]]) -> str:
    inner = "".join(
        f'<keys jid="{jid}">'
        + "".join(f'<key rid="{r}">{key(r, 0x0A)}</key>' for r in rids)
        + "</keys>"
        for jid, rids in groups.items()
    )
    return (
        '<message xmlns="jabber:component:accept" type="groupchat" to="ward@clinic.h.test">'
        f'<encrypted xmlns="urn:xmpp:omemo:2"><header sid="{sid}">{inner}</header>'
        f"<payload>{BLOCK}</payload></encrypted></message>"
    )


def check(
    xml: str,
    sender: str = ALICE,
    members: frozenset[str] = frozenset({ALICE, BOB}),
    mode: str = "strip",
    now: datetime = NOW,
) -> DeviceCheck:
    message = ET.fromstring(xml)
    header = parse_header(message)
    assert isinstance(header, OmemoHeader)
    return check_devices(header, message, DeviceFacts(sender, members, now, mode), REGISTRY)


def test_approved_device_of_a_member_can_send() -> None:
    result = check(legacy(111, 112, 201))
    assert result.verdict.action is Action.ACCEPT


def test_pending_device_cannot_send() -> None:
    verdict = check(legacy(113, 201)).verdict
    assert verdict.reason == "sender-device-not-approved" and "waiting for approval" in verdict.text


def test_revoked_device_cannot_send() -> None:
    verdict = check(legacy(114, 201)).verdict
    assert verdict.reason == "sender-device-not-approved" and "revoked" in verdict.text


def test_expired_device_is_refused_before_the_periodic_task_runs() -> None:
    verdict = check(legacy(115, 201)).verdict
    assert verdict.reason == "sender-device-not-approved" and "expired" in verdict.text


def test_device_expires_at_its_valid_until() -> None:
    assert check(legacy(111, 201), now=NOW + timedelta(days=9999)).verdict.action is Action.ACCEPT
    late = RegistrySnapshot([dev(ALICE, 111, valid_until=NOW), dev(BOB, 201)])
    message = ET.fromstring(legacy(111, 201))
    header = parse_header(message)
    assert isinstance(header, OmemoHeader)
    facts = DeviceFacts(ALICE, frozenset({ALICE, BOB}), NOW, "strip")
    assert check_devices(header, message, facts, late).verdict.rejected


def test_unregistered_device_cannot_send_and_asks_for_discovery() -> None:
    result = check(legacy(999, 201))
    assert result.verdict.reason == "sender-device-not-approved"
    assert result.sender_known is False


def test_device_of_someone_else_cannot_send_as_the_sender() -> None:
    assert check(legacy(201, 111), sender=ALICE).verdict.rejected


def test_key_for_a_pending_device_is_stripped_and_the_rest_kept() -> None:
    verdict = check(legacy(111, 201, 202, 112)).verdict
    assert verdict.action is Action.MODIFY and verdict.reason == "recipient-device-not-approved"
    assert verdict.stanza is not None
    expected = ET.fromstring(legacy(111, 201, 112))
    assert ET.tostring(verdict.stanza) == ET.tostring(expected)


def test_key_for_a_non_member_device_is_stripped() -> None:
    verdict = check(legacy(111, 201, 301)).verdict
    assert verdict.action is Action.MODIFY
    assert verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(ET.fromstring(legacy(111, 201)))


def test_unapproved_key_refuses_the_message_under_reject_policy() -> None:
    verdict = check(legacy(111, 201, 202), mode="reject").verdict
    assert verdict.action is Action.REJECT and verdict.reason == "recipient-device-not-approved"


def test_message_only_for_unapproved_devices_is_refused() -> None:
    assert check(legacy(111, 202, 301)).verdict.reason == "no-approved-recipient"


def test_keys_for_the_senders_own_other_devices_are_fine() -> None:
    assert check(legacy(111, 112, 201)).verdict.action is Action.ACCEPT


def test_key_transport_is_checked_like_any_message() -> None:
    assert check(legacy(113, 201, payload=False)).verdict.rejected
    assert check(legacy(111, 201, payload=False)).verdict.action is Action.ACCEPT


def test_omemo2_message_of_approved_devices_passes() -> None:
    result = check(omemo2(511, {BOB: (601,)}))
    assert result.verdict.action is Action.ACCEPT


def test_omemo2_key_is_checked_against_its_jid() -> None:
    # 111 is an approved OMEMO 2 device of mallory, not of bob: the pair decides.
    verdict = check(omemo2(511, {BOB: (601, 111)})).verdict
    assert verdict.action is Action.MODIFY and verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(ET.fromstring(omemo2(511, {BOB: (601,)})))


def test_omemo2_keys_for_a_non_member_are_stripped() -> None:
    verdict = check(omemo2(511, {BOB: (601,), MALLORY: (111,)})).verdict
    assert verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(ET.fromstring(omemo2(511, {BOB: (601,)})))


def test_legacy_sender_device_is_not_valid_for_omemo2() -> None:
    assert check(omemo2(111, {BOB: (601,)})).verdict.reason == "sender-device-not-approved"


def test_member_whose_approved_device_got_no_key_is_named() -> None:
    assert check(legacy(111, 112)).unreadable_for == (BOB,)


def test_member_without_any_approved_device_is_named() -> None:
    carol = "carol@h.test"
    result = check(legacy(111, 201), members=frozenset({ALICE, BOB, carol}))
    assert result.unreadable_for == (carol,)


def test_device_gone_from_pep_is_not_missed() -> None:
    snapshot = RegistrySnapshot([dev(ALICE, 111), dev(BOB, 201), dev(BOB, 203, active=False)])
    message = ET.fromstring(legacy(111, 201))
    header = parse_header(message)
    assert isinstance(header, OmemoHeader)
    facts = DeviceFacts(ALICE, frozenset({ALICE, BOB}), NOW, "strip")
    assert check_devices(header, message, facts, snapshot).unreadable_for == ()


# --- repeated keys for one device (issue 9, point 1: Profanity) ------------------------


def test_repeated_key_for_an_approved_device_is_accepted() -> None:
    """Profanity sends two keys for a present occupant; the message passes unchanged."""
    assert check(legacy(111, 201, 112, 201)).verdict.action is Action.ACCEPT


def test_every_copy_of_a_key_for_a_pending_device_is_stripped() -> None:
    verdict = check(legacy(111, 202, 201, 202, 112)).verdict
    assert verdict.action is Action.MODIFY and verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(ET.fromstring(legacy(111, 201, 112)))
    assert verdict.text == "Removed 1 key(s) for devices that are not approved (202)."


def test_copies_of_an_approved_key_stay_when_another_device_is_stripped() -> None:
    """What is relayed stays decryptable: each copy the sender made for Bob's phone."""
    verdict = check(legacy(111, 201, 202, 201)).verdict
    assert verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(ET.fromstring(legacy(111, 201, 201)))


def test_repeated_omemo2_key_for_an_approved_device_is_accepted() -> None:
    xml = omemo2(511, {BOB: (601,)}).replace(
        "</keys>", f'</keys><keys jid="{BOB}"><key rid="601">{key(601, 0x0B)}</key></keys>'
    )
    assert check(xml).verdict.action is Action.ACCEPT
