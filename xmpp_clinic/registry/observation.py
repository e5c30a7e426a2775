"""A person's PEP device list applied to the registry (I.4, I.5).

New devices become pending or approved per ``policy.device_approval``; devices gone from
the list are marked inactive, never deleted; an approved device whose identity key
changed must be approved again, and so must a device approved before its identity key
was known, when that key first arrives (the approval was not bound to a key). Each change
is audited in the caller's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.config import PolicySettings
from xmpp_clinic.registry import notices, rules
from xmpp_clinic.registry.fingerprint import fingerprint
from xmpp_clinic.registry.model import Device, DeviceState, ObservedDevice
from xmpp_clinic.registry.records import audit, queue, set_approved, to_device
from xmpp_clinic.store.models.devices import DeviceRecord

GATEWAY = "gateway"
# A device list is the person's own data; a huge one must not flood the registry.
MAX_LISTED_DEVICES = 100


class Observation:
    """One device list applied to one person's records, inside the caller's transaction."""

    def __init__(
        self,
        session: AsyncSession,
        policy: PolicySettings,
        now: datetime,
        jid: str,
        namespace: str,
        records: list[DeviceRecord],
        listed: set[int],
    ) -> None:
        self.session, self.policy, self.now = session, policy, now
        self.jid, self.namespace = jid, namespace
        self.mine = {r.device_id: r for r in records if r.namespace == namespace}
        self.person_known = bool(records)
        self.new_in_listing = len(listed - set(self.mine))
        self.phones = rules.phones_towards_limit((to_device(r) for r in records), self.now)
        self.changed: list[Device] = []

    async def listed(self, device_id: int, seen: ObservedDevice) -> None:
        record = self.mine.get(device_id)
        if record is None:
            await self._new(device_id, seen)
            return
        if seen.label is not None and seen.label != record.label:
            record.label = seen.label
        if not record.active:
            record.active = True
            await self._note(record, "device.active", "back-in-device-list")
        if seen.identity_key is not None and seen.identity_key != record.identity_key:
            await self._key(record, seen.identity_key)

    async def _new(self, device_id: int, seen: ObservedDevice) -> None:
        policy = self.policy
        record = DeviceRecord(
            jid=self.jid,
            namespace=self.namespace,
            device_id=device_id,
            label=seen.label,
            state=DeviceState.PENDING.value,
            state_changed_at=self.now,
            active=True,
            first_seen=self.now,
        )
        if seen.identity_key is not None:
            record.identity_key = seen.identity_key
            record.fingerprint = fingerprint(self.namespace, seen.identity_key)
        # The other OMEMO version of an approved phone is that phone, not one more (I.4).
        phone = rules.phone(to_device(record))
        state = rules.initial_state(
            policy.device_approval,
            person_known=self.person_known,
            new_devices=self.new_in_listing,
            approved=len(self.phones - {phone}),
            limit=policy.max_devices_per_person,
        )
        self.session.add(record)
        actor = f"{GATEWAY}:{policy.device_approval}"
        if state is DeviceState.APPROVED:
            until = rules.valid_until(self.now, policy.default_valid_days)
            set_approved(record, actor, self.now, until)
            self.phones.add(phone)
            await self._note(record, "device.approved", "auto-approved", actor)
            queue(self.session, notices.approved(to_device(record)))
        else:
            await self._note(record, "device.pending", "new-device")
            queue(self.session, notices.pending(to_device(record)))

    async def _key(self, record: DeviceRecord, key: bytes) -> None:
        first = record.identity_key is None
        record.identity_key = key
        record.fingerprint = fingerprint(self.namespace, key)
        if first and not self._approved_before_key(record):
            await self._note(record, "device.key-recorded", "bundle-fetched")
            return
        if first:
            # Approved while its key was unknown: nobody has compared this key with the
            # phone, and whoever published it first would otherwise define the approved
            # device. It waits for IT again (I.4, I.5).
            record.state = DeviceState.PENDING.value
            record.state_changed_at = self.now
            await self._note(record, "device.pending", "key-unknown-at-approval")
            queue(self.session, notices.key_after_approval(to_device(record)))
            return
        if record.state == DeviceState.APPROVED.value:
            record.state = DeviceState.PENDING.value
            record.state_changed_at = self.now
            queue(self.session, notices.key_changed(to_device(record)))
        await self._note(record, "device.key-changed", "identity-key-changed")

    def _approved_before_key(self, record: DeviceRecord) -> bool:
        """An approved device whose first key arrives now; under ``all`` (demo and tests,
        every device approved anyway) the key is just recorded."""
        return record.state == DeviceState.APPROVED.value and self.policy.device_approval != "all"

    async def gone(self, record: DeviceRecord) -> None:
        if record.active:
            record.active = False
            await self._note(record, "device.inactive", "gone-from-device-list")

    async def _note(
        self, record: DeviceRecord, action: str, reason: str, actor: str = GATEWAY
    ) -> None:
        device = to_device(record)
        note = f"fingerprint {device.fingerprint}" if device.fingerprint else ""
        await audit(self.session, actor, action, reason, device, note)
        self.changed.append(device)
