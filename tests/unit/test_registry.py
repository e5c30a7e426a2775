"""The device registry: approval modes, limits, revocation, expiry, audit (I.4, I.5, III.3)."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import xeddsa
from sqlalchemy import event

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry import service
from xmpp_clinic.registry.model import DeviceKey, DeviceState, Notice, ObservedDevice
from xmpp_clinic.registry.service import (
    AmbiguousDevice,
    DeviceLimitReached,
    DeviceRegistry,
    InvalidRequest,
    UnknownDevice,
)
from xmpp_clinic.store import Store
from xmpp_clinic.store.changes import ChangeWatcher

ALICE = "alice@hospital.test"
CURVE = base64.b64decode("BUcB0ISIRR9UWkCftYrj5YWBykCsP38RRpjNcd6sc8oB")[1:]
FP = "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01"
OTHER_CURVE = bytes(range(32))


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}")
    await store.migrate()
    yield store
    await store.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(store: Store, clock: Clock, **policy: Any) -> DeviceRegistry:
    return DeviceRegistry(store, PolicySettings(**policy), clock=clock)


def listing(*ids: int, key: bytes | None = None) -> dict[int, ObservedDevice]:
    return {device_id: ObservedDevice(identity_key=key) for device_id in ids}


@pytest.mark.requirement("I.4", "I.5")
async def test_new_device_waits_for_it_in_manual_mode(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.PENDING
    assert device.fingerprint == FP
    assert device.active


@pytest.mark.requirement("I.4", "I.5")
async def test_person_is_told_their_new_device_is_pending(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    (notice,) = await registry.take_notices()
    assert notice.jid == ALICE
    assert "waiting for approval" in notice.text and "4701d084 88451f54" in notice.text


async def drain(registry: DeviceRegistry) -> list[Notice]:
    """Take every queued notice and acknowledge it, as the gateway does once sent."""
    taken = await registry.take_notices()
    await registry.ack_notices(n.queue_id for n in taken if n.queue_id is not None)
    return taken


@pytest.mark.requirement("I.4", "I.5")
async def test_notices_are_handed_out_once_acknowledged(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    assert len(await drain(registry)) == 1
    assert await registry.take_notices() == []


@pytest.mark.requirement("I.4", "I.5")
async def test_notices_stay_queued_until_acknowledged(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    first, second = await registry.take_notices()
    assert await registry.take_notices() == [first, second]  # not sent yet: still there
    assert first.queue_id is not None
    await registry.ack_notices([first.queue_id])
    assert await registry.take_notices() == [second]


@pytest.mark.requirement("I.4", "I.5")
async def test_first_device_is_approved_automatically(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="first-device")
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.APPROVED
    assert device.approved_by == "gateway:first-device"
    assert device.valid_until == clock.now + timedelta(days=180)


@pytest.mark.requirement("I.4", "I.5")
async def test_second_device_waits_in_first_device_mode(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="first-device")
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    states = {d.device_id: d.state for d in await registry.devices(ALICE)}
    assert states == {11: DeviceState.APPROVED, 12: DeviceState.PENDING}


@pytest.mark.requirement("I.4", "I.5")
async def test_two_devices_at_first_contact_both_wait(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="first-device")
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    assert {d.state for d in await registry.devices(ALICE)} == {DeviceState.PENDING}


@pytest.mark.requirement("I.4", "I.5")
async def test_all_mode_approves_up_to_the_limit(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="all", max_devices_per_person=2)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12, 13))
    states = [d.state for d in await registry.devices(ALICE)]
    assert states == [DeviceState.APPROVED, DeviceState.APPROVED, DeviceState.PENDING]


@pytest.mark.requirement("I.4", "I.5")
async def test_device_gone_from_pep_is_inactive_not_deleted(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    await registry.observe(ALICE, LEGACY_NS, listing(12))
    active = {d.device_id: d.active for d in await registry.devices(ALICE)}
    assert active == {11: False, 12: True}


@pytest.mark.requirement("I.4", "I.5")
async def test_device_back_in_pep_is_active_again(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.observe(ALICE, LEGACY_NS, listing())
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    (device,) = await registry.devices(ALICE)
    assert device.active


@pytest.mark.requirement("I.4", "I.5")
async def test_other_namespace_list_leaves_devices_alone(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.observe(ALICE, OMEMO2_NS, listing(21))
    assert all(d.active for d in await registry.devices(ALICE))


@pytest.mark.requirement("I.4", "I.5")
async def test_changed_identity_key_needs_approval_again(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    await registry.approve(ALICE, 11, actor="cli:it")
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=OTHER_CURVE))
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.PENDING
    assert device.fingerprint == OTHER_CURVE.hex()


@pytest.mark.requirement("I.4", "I.5")
async def test_approval_records_who_until_when_and_asset(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    device = await registry.approve(ALICE, 11, actor="cli:it", valid_days=30, asset_id="MDM-7")
    assert device.state is DeviceState.APPROVED
    assert (device.approved_by, device.approved_at) == ("cli:it", clock.now)
    assert device.valid_until == clock.now + timedelta(days=30)
    assert device.asset_id == "MDM-7"


@pytest.mark.requirement("I.4", "I.5")
async def test_approval_beyond_the_limit_is_refused(store: Store, clock: Clock) -> None:
    registry = make(store, clock, max_devices_per_person=1)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    await registry.approve(ALICE, 11, actor="cli:it")
    with pytest.raises(DeviceLimitReached):
        await registry.approve(ALICE, 12, actor="cli:it")


@pytest.mark.requirement("I.4", "I.5")
async def test_reapproval_renews_an_approved_device(store: Store, clock: Clock) -> None:
    registry = make(store, clock, max_devices_per_person=1)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.approve(ALICE, 11, actor="cli:it", valid_days=10)
    clock.now += timedelta(days=5)
    device = await registry.approve(ALICE, 11, actor="cli:it", valid_days=10)
    assert device.valid_until == clock.now + timedelta(days=10)


@pytest.mark.requirement("I.4", "I.5")
async def test_unknown_device_cannot_be_approved(store: Store, clock: Clock) -> None:
    with pytest.raises(UnknownDevice):
        await make(store, clock).approve(ALICE, 99, actor="cli:it")


@pytest.mark.requirement("I.4", "I.5")
async def test_same_id_in_both_versions_needs_the_namespace(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.observe(ALICE, OMEMO2_NS, listing(11))
    with pytest.raises(AmbiguousDevice):
        await registry.approve(ALICE, 11, actor="cli:it")
    device = await registry.approve(ALICE, 11, actor="cli:it", namespace=OMEMO2_NS)
    assert device.namespace == OMEMO2_NS


@pytest.mark.requirement("I.4", "I.5")
async def test_revoke_records_who_and_why(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.approve(ALICE, 11, actor="cli:it")
    device = await registry.revoke(ALICE, 11, actor="cli:it", reason="stolen")
    assert device.state is DeviceState.REVOKED
    assert (device.revoked_by, device.revoked_at, device.reason) == ("cli:it", clock.now, "stolen")


@pytest.mark.requirement("I.4", "I.5")
async def test_revoke_all_cuts_every_device_of_a_person(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    await registry.observe(ALICE, OMEMO2_NS, listing(21))
    await registry.approve(ALICE, 11, actor="cli:it")
    revoked = await registry.revoke_all(ALICE, actor="cli:it", reason="lost phone")
    assert len(revoked) == 3
    assert {d.state for d in await registry.devices(ALICE)} == {DeviceState.REVOKED}


@pytest.mark.requirement("I.4", "I.5")
async def test_revoked_device_stays_revoked_when_it_reappears(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="all")
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.revoke(ALICE, 11, actor="cli:it", reason="lost")
    await registry.observe(ALICE, LEGACY_NS, listing())
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.REVOKED


@pytest.mark.requirement("I.4", "I.5")
async def test_periodic_task_marks_ended_approvals_expired(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.approve(ALICE, 11, actor="cli:it", valid_days=1)
    await drain(registry)
    clock.now += timedelta(days=2)
    run = await registry.expire_due()
    assert [d.device_id for d in run.expired] == [11]
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.EXPIRED
    (notice,) = await registry.take_notices()
    assert "expired" in notice.text


@pytest.mark.requirement("I.4", "I.5")
async def test_person_is_warned_once_before_expiry(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.approve(ALICE, 11, actor="cli:it", valid_days=20)
    await drain(registry)
    clock.now += timedelta(days=10)
    assert len((await registry.expire_due()).warned) == 1
    assert len((await registry.expire_due()).warned) == 0
    (notice,) = await registry.take_notices()
    assert notice == Notice(ALICE, notice.text) and "2025-03-21" in notice.text


@pytest.mark.requirement("I.4", "I.5")
async def test_device_approved_before_its_key_was_known_waits_again_when_it_arrives(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))  # bundle not readable yet
    await registry.approve(ALICE, 11, actor="cli:it")
    await drain(registry)
    changed = await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    (device,) = await registry.devices(ALICE)
    assert [d.state for d in changed] == [DeviceState.PENDING]
    assert device.state is DeviceState.PENDING and device.fingerprint == FP
    (notice,) = await drain(registry)
    assert "approval by hospital IT again" in notice.text and "4701d084" in notice.text
    events = await AuditLog(store).events()
    assert (events[-1].action, events[-1].reason) == ("device.pending", "key-unknown-at-approval")


@pytest.mark.requirement("I.4", "I.5")
async def test_device_approved_with_its_key_stays_approved_on_rediscovery(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    await registry.approve(ALICE, 11, actor="cli:it")
    assert await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE)) == []
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.APPROVED


@pytest.mark.requirement("I.4", "I.5")
async def test_first_key_of_a_device_in_all_mode_is_only_recorded(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock, device_approval="all")
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.APPROVED and device.fingerprint == FP


@pytest.mark.requirement("I.4", "I.5")
@pytest.mark.parametrize("days", [0, -1, 3651])
async def test_approval_validity_out_of_range_is_refused(
    store: Store, clock: Clock, days: int
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    with pytest.raises(InvalidRequest, match="between 1 and 3650"):
        await registry.approve(ALICE, 11, actor="cli:it", valid_days=days)
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.PENDING


@pytest.mark.requirement("I.4", "I.5")
async def test_approval_for_ten_years_is_allowed(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    device = await registry.approve(ALICE, 11, actor="cli:it", valid_days=3650)
    assert device.valid_until == clock.now + timedelta(days=3650)


@pytest.mark.requirement("I.4", "I.5")
@pytest.mark.parametrize("reason", ["", "  "])
async def test_revocation_without_a_reason_is_refused(
    store: Store, clock: Clock, reason: str
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    with pytest.raises(InvalidRequest, match="reason"):
        await registry.revoke(ALICE, 11, actor="cli:it", reason=reason)
    with pytest.raises(InvalidRequest, match="reason"):
        await registry.revoke_all(ALICE, actor="cli:it", reason=reason)
    (device,) = await registry.devices(ALICE)
    assert device.state is DeviceState.PENDING


@pytest.mark.requirement("I.4", "I.5")
async def test_each_change_moves_the_devices_counter(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    watcher = ChangeWatcher(store)
    await watcher.refresh()
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    assert "devices" in await watcher.refresh()
    await registry.approve(ALICE, 11, actor="cli:it")
    assert "devices" in await watcher.refresh()
    await registry.revoke(ALICE, 11, actor="cli:it", reason="x")
    assert "devices" in await watcher.refresh()
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    assert "devices" not in await watcher.refresh()  # nothing changed


@pytest.mark.requirement("I.4", "I.5")
async def test_each_change_is_an_audit_event_in_an_intact_chain(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
    await registry.approve(ALICE, 11, actor="cli:it")
    await registry.revoke(ALICE, 11, actor="cli:it", reason="lost phone")
    log = AuditLog(store)
    actions = [(e.actor, e.action, e.reason) for e in await log.events()]
    assert actions == [
        ("gateway", "device.pending", "new-device"),
        ("cli:it", "device.approved", "approved"),
        ("cli:it", "device.revoked", "revoked"),
    ]
    assert all(e.subject == f"{ALICE}/omemo/11" for e in await log.events())
    assert (await log.verify()).intact


@pytest.mark.requirement("I.4", "I.5")
async def test_huge_device_list_is_capped(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(*range(1, 500)))
    assert len(await registry.devices(ALICE)) == 100


@pytest.mark.requirement("I.4", "I.5")
async def test_last_seen_is_recorded_without_a_state_change(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    (device,) = await registry.devices(ALICE)
    await registry.mark_seen([device.key])
    (device,) = await registry.devices(ALICE)
    assert device.last_seen == clock.now and device.state is DeviceState.PENDING


@pytest.mark.requirement("I.4", "I.5")
async def test_last_seen_is_one_update_per_batch_not_per_device(
    store: Store, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(1, 2, 3, 4, 5))
    await registry.observe("bob@hospital.test", LEGACY_NS, listing(1))
    monkeypatch.setattr(service, "SEEN_BATCH", 2)
    updates: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE DEVICES"):
            updates.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        keys = [DeviceKey(ALICE, LEGACY_NS, n) for n in (1, 2, 3, 4, 5, 5, 99)]
        await registry.mark_seen(keys)
        await registry.mark_seen([])
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", count)
    assert len(updates) == 3  # 6 distinct keys in batches of 2; nothing for an empty call
    assert {d.device_id: d.last_seen for d in await registry.devices(ALICE)} == dict.fromkeys(
        (1, 2, 3, 4, 5), clock.now
    )
    assert [d.last_seen for d in await registry.devices("bob@hospital.test")] == [None]


@pytest.mark.requirement("I.4", "I.5")
async def test_operator_jids_are_normalised_and_malformed_ones_refused(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11))
    assert [d.device_id for d in await registry.devices(" Alice@Hospital.TEST/phone")] == [11]
    device = await registry.approve("ALICE@hospital.test", 11, actor="cli:it")
    assert device.jid == ALICE
    for bad in ("not a jid", "alice@", "a" * 1024 + "@hospital.test"):
        with pytest.raises(InvalidRequest, match="invalid JID"):
            await registry.approve(bad, 11, actor="cli:it")


@pytest.mark.requirement("I.4", "I.5")
async def test_snapshot_knows_usable_devices(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12))
    await registry.approve(ALICE, 11, actor="cli:it", valid_days=1)
    snapshot = await registry.snapshot()
    assert snapshot.usable_ids(ALICE, LEGACY_NS, clock.now) == {11}
    assert snapshot.usable_ids(ALICE, LEGACY_NS, clock.now + timedelta(days=2)) == set()
    assert snapshot.usable_owners(LEGACY_NS, 11, clock.now) == {ALICE}


@pytest.mark.requirement("I.4", "I.5")
@pytest.mark.postgres
async def test_registry_workflow_on_postgres(pg_url: str, clock: Clock) -> None:
    store = Store(pg_url)
    try:
        await store.migrate()
        registry = make(store, clock)
        await registry.observe(ALICE, LEGACY_NS, listing(11, key=CURVE))
        await registry.observe(ALICE, OMEMO2_NS, listing(4_000_000_000))
        await registry.approve(ALICE, 11, actor="cli:it", valid_days=1, asset_id="MDM-1")
        assert (await registry.snapshot()).usable_ids(ALICE, LEGACY_NS, clock.now) == {11}
        await registry.mark_seen([DeviceKey(ALICE, LEGACY_NS, 11)])
        assert (await registry.device(ALICE, 11)).last_seen == clock.now
        clock.now += timedelta(days=2)
        assert len((await registry.expire_due()).expired) == 1
        await registry.revoke_all(ALICE, actor="cli:it", reason="lost phone")
        assert {d.state for d in await registry.devices(ALICE)} == {DeviceState.REVOKED}
        assert len(await registry.take_notices()) == 6  # 2 pending, approved, expired, 2 revoked
        assert (await AuditLog(store).verify()).intact
    finally:
        await store.close()


# One phone, two OMEMO versions (issue 9.8): python-omemo clients publish one device id
# in both, with one identity key: Curve25519 in the legacy bundle, Ed25519 in OMEMO 2.
PHONE_PRIV = xeddsa.seed_to_priv(bytes([7]) * 32)
PHONE_CURVE = xeddsa.priv_to_curve25519_pub(PHONE_PRIV)
PHONE_ED = xeddsa.priv_to_ed25519_pub(PHONE_PRIV)
OTHER_ED = xeddsa.priv_to_ed25519_pub(xeddsa.seed_to_priv(bytes([8]) * 32))


async def one_phone_in_both_versions(registry: DeviceRegistry, omemo2_key: bytes | None) -> None:
    await registry.observe(ALICE, LEGACY_NS, listing(11, key=PHONE_CURVE))
    await registry.observe(ALICE, OMEMO2_NS, listing(11, key=omemo2_key))
    await drain(registry)


@pytest.mark.requirement("I.4", "I.5")
async def test_one_approval_approves_both_versions_of_one_phone(store: Store, clock: Clock) -> None:
    registry = make(store, clock)
    await one_phone_in_both_versions(registry, PHONE_ED)
    approved = await registry.approve_each(ALICE, 11, actor="cli:it")
    assert [d.namespace for d in approved] == [LEGACY_NS, OMEMO2_NS]
    devices = await registry.devices(ALICE)
    assert {d.state for d in devices} == {DeviceState.APPROVED}
    assert len({d.fingerprint for d in devices}) == 1
    events = [e for e in await AuditLog(store).events() if e.action == "device.approved"]
    assert sorted(e.subject for e in events) == [
        f"{ALICE}/omemo/11",
        f"{ALICE}/omemo2/11",
    ]  # audited once per record
    assert len(await drain(registry)) == 1  # one phone, one notice


@pytest.mark.requirement("I.4", "I.5")
async def test_one_revocation_revokes_both_versions_of_one_phone(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock)
    await one_phone_in_both_versions(registry, PHONE_ED)
    await registry.approve_each(ALICE, 11, actor="cli:it")
    await drain(registry)
    revoked = await registry.revoke_each(ALICE, 11, actor="cli:it", reason="lost")
    assert [d.state for d in revoked] == [DeviceState.REVOKED] * 2
    events = [e for e in await AuditLog(store).events() if e.action == "device.revoked"]
    assert len(events) == 2
    assert len(await drain(registry)) == 1


@pytest.mark.requirement("I.4", "I.5")
async def test_both_versions_of_one_phone_count_once_towards_the_limit(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock, max_devices_per_person=1)
    await one_phone_in_both_versions(registry, PHONE_ED)
    approved = await registry.approve_each(ALICE, 11, actor="cli:it")
    assert len(approved) == 2


@pytest.mark.requirement("I.4", "I.5")
async def test_a_phone_in_both_versions_leaves_room_for_a_second_phone(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock, max_devices_per_person=2)
    await one_phone_in_both_versions(registry, PHONE_ED)
    await registry.approve_each(ALICE, 11, actor="cli:it")
    await registry.observe(
        ALICE, OMEMO2_NS, {11: ObservedDevice(identity_key=PHONE_ED), 12: ObservedDevice()}
    )
    (second,) = await registry.approve_each(ALICE, 12, actor="cli:it")
    assert second.state is DeviceState.APPROVED  # three approved records, two phones
    await registry.observe(ALICE, OMEMO2_NS, listing(11, 12, 13))
    with pytest.raises(DeviceLimitReached):
        await registry.approve_each(ALICE, 13, actor="cli:it")


@pytest.mark.requirement("I.4", "I.5")
async def test_the_second_version_of_an_approved_phone_fits_under_the_limit(
    store: Store, clock: Clock
) -> None:
    registry = make(store, clock, max_devices_per_person=1)
    await one_phone_in_both_versions(registry, PHONE_ED)
    await registry.approve_each(ALICE, 11, actor="cli:it", namespace=LEGACY_NS)
    (device,) = await registry.approve_each(ALICE, 11, actor="cli:it", namespace=OMEMO2_NS)
    assert device.state is DeviceState.APPROVED


@pytest.mark.requirement("I.4", "I.5")
async def test_all_mode_counts_a_phone_in_both_versions_once(store: Store, clock: Clock) -> None:
    registry = make(store, clock, device_approval="all", max_devices_per_person=1)
    await one_phone_in_both_versions(registry, PHONE_ED)
    assert {d.state for d in await registry.devices(ALICE)} == {DeviceState.APPROVED}
    await registry.observe(ALICE, LEGACY_NS, listing(11, 12, key=PHONE_CURVE))
    by_id = {(d.namespace, d.device_id): d.state for d in await registry.devices(ALICE)}
    assert by_id[(LEGACY_NS, 12)] is DeviceState.PENDING


@pytest.mark.requirement("I.4", "I.5")
@pytest.mark.parametrize(
    ("omemo2_key", "why"),
    [(OTHER_ED, "different identity keys"), (None, "identity key of one is not known")],
)
async def test_different_or_unknown_keys_still_ask_for_the_namespace(
    store: Store, clock: Clock, omemo2_key: bytes | None, why: str
) -> None:
    registry = make(store, clock)
    await one_phone_in_both_versions(registry, omemo2_key)
    for decide in (
        registry.approve_each(ALICE, 11, actor="cli:it"),
        registry.revoke_each(ALICE, 11, actor="cli:it", reason="lost"),
    ):
        with pytest.raises(AmbiguousDevice, match=why) as raised:
            await decide
        assert "pass the namespace" in str(raised.value)
    assert {d.state for d in await registry.devices(ALICE)} == {DeviceState.PENDING}
    (device,) = await registry.approve_each(ALICE, 11, actor="cli:it", namespace=OMEMO2_NS)
    assert device.namespace == OMEMO2_NS
