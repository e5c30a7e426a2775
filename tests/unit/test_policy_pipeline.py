"""The pipeline as the relay sees it: membership -> e2e -> devices (II.1, I.4, I.5, IV.2)."""

from __future__ import annotations

import asyncio
import base64
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from xmpp_clinic.archive.audit import AuditEvent, AuditLog
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.policy.fallback import FALLBACK_TEXT
from xmpp_clinic.policy.pipeline import Pipeline
from xmpp_clinic.policy.verdict import Action, MessageContext, MessagePolicy, ReasonCode
from xmpp_clinic.registry.model import Device, DeviceKey, DeviceState, ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.changes import ChangeWatcher

THREAD = "ward4@clinic.h.test"
ALICE, BOB = "alice@h.test", "bob@h.test"
NOW = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)


def key(rid: int) -> str:
    """A legacy key of the size and framing OMEMO produces, different for every device."""
    return base64.b64encode(b"\x33" + rid.to_bytes(4, "big") * 20).decode()


IV = base64.b64encode(bytes(12)).decode()


def message(sid: int, *rids: int, body: str = "") -> ET.Element:
    keys = "".join(f'<key rid="{rid}">{key(rid)}</key>' for rid in rids)
    return ET.fromstring(
        f'<message xmlns="jabber:component:accept" type="groupchat" to="{THREAD}">'
        f'<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="{sid}">{keys}'
        f"<iv>{IV}</iv></header><payload>UA==</payload></encrypted>{body}</message>"
    )


def ctx(stanza: ET.Element, sender: str = ALICE) -> MessageContext:
    return MessageContext(THREAD, sender, frozenset({ALICE, BOB}), stanza)


def approved(jid: str, device_id: int) -> Device:
    return Device(DeviceKey(jid, LEGACY_NS, device_id), DeviceState.APPROVED, None, None, True)


class FakeRegistry:
    def __init__(self, *devices: Device) -> None:
        self.devices = list(devices)
        self.loads = 0
        self.down = False

    async def devices_of(self, persons: Collection[str]) -> list[Device]:
        self.loads += 1
        if self.down:
            raise StoreUnavailable("store error (OperationalError)")
        return [d for d in self.devices if d.jid in persons]


class FakeAudit:
    def __init__(self, down: bool = False) -> None:
        self.events: list[AuditEvent] = []
        self.down = down

    async def record(self, event: AuditEvent) -> int:
        if self.down:
            raise StoreUnavailable("down")
        self.events.append(event)
        return len(self.events)


def pipeline(registry: Any, **kwargs: Any) -> Pipeline:
    return Pipeline(PolicySettings(), registry, clock=lambda: NOW, **kwargs)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'pipeline.db'}")
    await store.migrate()
    yield store
    await store.close()


@pytest.mark.requirement("II.1", "I.4", "IV.2")
def test_pipeline_is_a_message_policy() -> None:
    policy: MessagePolicy = pipeline(FakeRegistry())
    assert policy is not None


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_non_member_cannot_write() -> None:
    verdict = await pipeline(FakeRegistry()).evaluate(ctx(message(1, 2), sender="eve@h.test"))
    assert verdict.reason == "not-a-member"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_member_jid_compares_without_case_or_resource() -> None:
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    verdict = await pipeline(registry).evaluate(ctx(message(1, 2), sender="Alice@H.test/phone"))
    assert verdict.action is Action.ACCEPT


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_plaintext_is_refused() -> None:
    stanza = ET.fromstring('<message xmlns="jabber:client"><body>bed 4</body></message>')
    assert (await pipeline(FakeRegistry()).evaluate(ctx(stanza))).reason == "plaintext-refused"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_chat_state_passes_without_the_registry() -> None:
    registry = FakeRegistry()
    stanza = ET.fromstring(
        '<message xmlns="jabber:client"><active xmlns="http://jabber.org/protocol/chatstates"/>'
        "</message>"
    )
    assert (await pipeline(registry).evaluate(ctx(stanza))).action is Action.ACCEPT
    assert registry.loads == 0


@pytest.mark.parametrize(
    "header",
    [
        f"<header><key rid='2'>{key(2)}</key><iv>{IV}</iv></header>",
        f"<header sid='1'><key rid='x'>{key(2)}</key><iv>{IV}</iv></header>",
        "<header sid='1'><key rid='2'>Patient Hans Mueller K 6 1 bed 12</key></header>",
        "<header sid='1'>" + f"<key rid='2'>{key(2)}</key>" * 1001 + f"<iv>{IV}</iv></header>",
        "",
    ],
)
@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_malformed_header_is_refused_not_crashing(header: str) -> None:
    stanza = ET.fromstring(
        f'<message xmlns="jabber:client"><encrypted xmlns="{LEGACY_NS}">{header}</encrypted>'
        "</message>"
    )
    assert (await pipeline(FakeRegistry()).evaluate(ctx(stanza))).reason == "malformed-omemo"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_registry_that_cannot_load_refuses() -> None:
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    registry.down = True
    verdict = await pipeline(registry).evaluate(ctx(message(1, 2)))
    assert verdict.reason == "registry-unavailable"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_failed_reload_refuses_until_the_registry_is_back() -> None:
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    policy = pipeline(registry)
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT
    registry.down = True
    await policy.reload()
    assert (await policy.evaluate(ctx(message(1, 2)))).reason == "registry-unavailable"
    registry.down = False
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_snapshot_is_cached_between_messages() -> None:
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    policy = pipeline(registry)
    for _ in range(3):
        await policy.evaluate(ctx(message(1, 2)))
    assert registry.loads == 1


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_unexpected_error_refuses_the_message(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise RuntimeError("a bug in a check")

    monkeypatch.setattr("xmpp_clinic.policy.pipeline.check_devices", broken)
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    verdict = await pipeline(registry).evaluate(ctx(message(1, 2)))
    assert verdict.reason == "policy-error"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_unknown_sender_device_is_discovered_then_decided() -> None:
    registry = FakeRegistry(approved(BOB, 2))
    asked: list[str] = []

    async def discover(jid: str) -> None:
        asked.append(jid)
        registry.devices.append(approved(ALICE, 1))

    verdict = await pipeline(registry, discovery=discover).evaluate(ctx(message(1, 2)))
    assert verdict.action is Action.ACCEPT and asked == [ALICE]


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_discovery_is_asked_at_most_once_a_minute() -> None:
    asked: list[str] = []

    async def discover(jid: str) -> None:
        asked.append(jid)

    policy = pipeline(FakeRegistry(approved(BOB, 2)), discovery=discover)
    for _ in range(3):
        verdict = await policy.evaluate(ctx(message(1, 2)))
        assert verdict.reason == "sender-device-not-approved"
    assert asked == [ALICE]


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_failing_discovery_refuses_the_message() -> None:
    async def discover(jid: str) -> None:
        raise TimeoutError

    policy = pipeline(FakeRegistry(approved(BOB, 2)), discovery=discover)
    assert (await policy.evaluate(ctx(message(1, 2)))).reason == "sender-device-not-approved"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_key_for_a_device_never_seen_makes_discovery_ask_the_members() -> None:
    """A member published a device after joining: discovered, then the key is kept (I.4)."""
    registry = FakeRegistry(approved(ALICE, 1))
    asked: list[str] = []

    async def discover(jid: str) -> None:
        asked.append(jid)
        if jid == BOB:
            registry.devices.append(approved(BOB, 2))

    verdict = await pipeline(registry, discovery=discover).evaluate(ctx(message(1, 2)))
    assert verdict.action is Action.ACCEPT
    assert sorted(asked) == [ALICE, BOB]  # legacy keys carry no JID: every member is asked


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_key_for_an_unknown_device_asks_each_member_at_most_once_a_minute() -> None:
    asked: list[str] = []

    async def discover(jid: str) -> None:
        asked.append(jid)

    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)), discovery=discover)
    for _ in range(3):
        verdict = await policy.evaluate(ctx(message(1, 2, 99)))
        assert verdict.action is Action.MODIFY  # 99 stays unknown: its key is removed
    assert sorted(asked) == [ALICE, BOB]


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_key_for_a_known_pending_device_asks_nobody() -> None:
    pending = Device(DeviceKey(BOB, LEGACY_NS, 3), DeviceState.PENDING, None, None, True)
    asked: list[str] = []

    async def discover(jid: str) -> None:
        asked.append(jid)

    policy = pipeline(
        FakeRegistry(approved(ALICE, 1), approved(BOB, 2), pending), discovery=discover
    )
    assert (await policy.evaluate(ctx(message(1, 2, 3)))).action is Action.MODIFY
    assert asked == []


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_sender_is_told_once_who_may_not_read() -> None:
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(ALICE, 3), approved(BOB, 2)))
    first = await policy.evaluate(ctx(message(1, 3)))  # only for alice's other device
    assert first.action is Action.ACCEPT
    assert len(first.notices) == 1 and BOB in first.notices[0]
    again = await policy.evaluate(ctx(message(1, 3)))
    assert again.notices == ()


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_accepted_sender_devices_are_reported_for_last_seen() -> None:
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)))
    await policy.evaluate(ctx(message(1, 2)))
    assert policy.drain_seen() == {DeviceKey(ALICE, LEGACY_NS, 1)}
    assert policy.drain_seen() == set()


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_refusals_and_stripped_keys_are_audited_without_content() -> None:
    audit = FakeAudit()
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)), audit=audit)
    await policy.evaluate(ctx(message(1, 2)))
    await policy.evaluate(ctx(message(1, 2, 9)))
    await policy.evaluate(ctx(message(7, 2)))
    assert [(e.action, e.reason) for e in audit.events] == [
        ("message.keys-removed", "recipient-device-not-approved"),
        ("message.rejected", "sender-device-not-approved"),
    ]
    assert all(e.subject == THREAD and key(2) not in e.note for e in audit.events)


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_stripped_message_is_refused_when_it_cannot_be_audited() -> None:
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)), audit=FakeAudit(True))
    assert (await policy.evaluate(ctx(message(1, 2, 9)))).reason == "store-unavailable"


async def _registry_pipeline(store: Store) -> tuple[DeviceRegistry, Pipeline, ChangeWatcher]:
    registry = DeviceRegistry(store, PolicySettings(), clock=lambda: NOW)
    policy = Pipeline(PolicySettings(), registry, clock=lambda: NOW, audit=AuditLog(store))
    watcher = ChangeWatcher(store)
    watcher.on_change("devices", policy.reload)
    await registry.observe(ALICE, LEGACY_NS, {1: ObservedDevice()})
    await registry.observe(BOB, LEGACY_NS, {2: ObservedDevice()})
    await registry.approve(BOB, 2, actor="cli:it")
    return registry, policy, watcher


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_pending_device_can_send_once_approved_without_restart(store: Store) -> None:
    registry, policy, watcher = await _registry_pipeline(store)
    await watcher.refresh()
    assert (await policy.evaluate(ctx(message(1, 2)))).reason == "sender-device-not-approved"
    await registry.approve(ALICE, 1, actor="cli:it")
    await watcher.refresh()
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_revocation_applies_to_the_very_next_message(store: Store) -> None:
    registry, policy, watcher = await _registry_pipeline(store)
    await registry.approve(ALICE, 1, actor="cli:it")
    await watcher.refresh()
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT
    await registry.revoke_all(ALICE, actor="cli:it", reason="lost phone")
    await watcher.refresh()
    verdict = await policy.evaluate(ctx(message(1, 2)))
    assert verdict.reason == "sender-device-not-approved" and "revoked" in verdict.text
    events = await AuditLog(store).events()
    assert events[-1].action == "message.rejected" and events[-1].actor == ALICE


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_the_cache_holds_only_the_people_messages_concern_and_is_bounded() -> None:
    """Issue 13: the snapshot does not grow with the device table, only with who talks."""
    others = [approved(f"u{i}@h.test", 100 + i) for i in range(50)]
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2), *others)
    asked: list[set[str]] = []
    original = registry.devices_of

    async def recording(persons: Collection[str]) -> list[Device]:
        asked.append(set(persons))
        return await original(persons)

    registry.devices_of = recording  # type: ignore[method-assign]
    policy = pipeline(registry, cached_persons=2)
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT
    assert asked == [{ALICE, BOB}]
    snapshot = await policy.snapshot(["u1@h.test"])  # a third person evicts the oldest
    assert snapshot.usable_ids("u1@h.test", LEGACY_NS, NOW) == {101} and len(asked) == 2
    assert (await policy.evaluate(ctx(message(1, 2)))).action is Action.ACCEPT
    assert len(asked) == 3  # one of Alice and Bob was evicted and read again


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_revocation_during_a_load_in_flight_is_not_lost() -> None:
    """A snapshot read before a revocation must not be cached after it (I.5)."""
    registry = FakeRegistry(approved(ALICE, 1), approved(BOB, 2))
    gate = asyncio.Event()
    original = registry.devices_of

    async def slow_load(persons: Collection[str]) -> list[Device]:
        devices = await original(persons)  # reads the state before the revocation
        await gate.wait()
        return devices

    registry.devices_of = slow_load  # type: ignore[method-assign]
    policy = pipeline(registry)
    first = asyncio.ensure_future(policy.evaluate(ctx(message(1, 2))))
    await asyncio.sleep(0)  # the first message's load is now in flight
    registry.devices.remove(approved(ALICE, 1))  # the CLI revokes Alice's device ...
    registry.devices_of = original  # type: ignore[method-assign]
    reload = asyncio.ensure_future(policy.reload())  # ... and the counter moves
    await asyncio.sleep(0)
    gate.set()
    await first
    await reload
    verdict = await policy.evaluate(ctx(message(1, 2)))
    assert verdict.reason == "sender-device-not-approved"


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_every_check_answers_with_a_reason_code(store: Store) -> None:
    registry = DeviceRegistry(store, PolicySettings())
    policy = Pipeline(PolicySettings(), registry)
    outsider = await policy.evaluate(ctx(message(1, 2), sender="eve@h.test"))
    unknown_device = await policy.evaluate(ctx(message(1, 2)))
    plaintext = await policy.evaluate(
        ctx(ET.fromstring('<message xmlns="jabber:component:accept"><body>hi</body></message>'))
    )
    for verdict in (outsider, unknown_device, plaintext):
        assert isinstance(verdict.reason, ReasonCode) and verdict.rejected
    assert [outsider.reason, unknown_device.reason, plaintext.reason] == [
        ReasonCode.NOT_A_MEMBER,
        ReasonCode.SENDER_DEVICE_NOT_APPROVED,
        ReasonCode.PLAINTEXT_REFUSED,
    ]


# --- the gateway's fallback body and the device check together (issue 9) ------------

PROFANITY = (
    "<body>You received a message encrypted with OMEMO but your client doesn't support OMEMO."
    "</body>"
)
OWN_BODY = f'<body xml:lang="en">{FALLBACK_TEXT}</body>'


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_fallback_body_is_replaced_before_it_is_relayed() -> None:
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)))
    verdict = await policy.evaluate(ctx(message(1, 2, body=PROFANITY)))
    assert verdict.action is Action.MODIFY and verdict.reason == "fallback-replaced"
    assert verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(message(1, 2, body=OWN_BODY))


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_relayed_message_has_both_the_gateways_body_and_only_approved_keys() -> None:
    """Profanity to a thread with Bob's pending laptop: both changes reach the archive."""
    pending = Device(DeviceKey(BOB, LEGACY_NS, 3), DeviceState.PENDING, None, None, True)
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2), pending))
    verdict = await policy.evaluate(ctx(message(1, 3, 2, 3, body=PROFANITY)))
    assert verdict.action is Action.MODIFY and verdict.reason == "recipient-device-not-approved"
    assert verdict.stanza is not None
    assert ET.tostring(verdict.stanza) == ET.tostring(message(1, 2, body=OWN_BODY))


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_replacing_the_fallback_body_is_not_an_audit_event() -> None:
    """Every client sends a fallback: replacing it is the normal path, not an incident."""
    audit = FakeAudit()
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)), audit=audit)
    await policy.evaluate(ctx(message(1, 2, body=PROFANITY)))
    assert audit.events == []


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_replacing_the_fallback_body_does_not_need_the_audit_log() -> None:
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)), audit=FakeAudit(True))
    verdict = await policy.evaluate(ctx(message(1, 2, body=PROFANITY)))
    assert verdict.action is Action.MODIFY


@pytest.mark.requirement("II.1", "I.4", "IV.2")
async def test_deeply_nested_message_is_refused_before_anything_copies_it() -> None:
    """Issue 8, finding 7: 100 000 levels are refused with a reason, not a RecursionError."""
    deep = ET.Element("{jabber:component:accept}message")
    node = deep
    for _ in range(100_000):
        node = ET.SubElement(node, "{urn:example}x")
    verdict = await pipeline(FakeRegistry()).evaluate(ctx(deep))
    assert verdict.reason == "stanza-too-large" and "levels deep" in verdict.text


@pytest.mark.requirement("I.5")
async def test_a_threads_snapshot_is_built_once_per_registry_change() -> None:
    """Issue 13: messages of one thread share one index of its members' devices until the
    next registry change, which builds a fresh one (a revocation still applies, I.5)."""
    policy = pipeline(FakeRegistry(approved(ALICE, 1), approved(BOB, 2)))
    members = frozenset({ALICE, BOB})
    first = await policy.snapshot(members)
    assert await policy.snapshot(members) is first
    await policy.reload()
    assert await policy.snapshot(members) is not first
