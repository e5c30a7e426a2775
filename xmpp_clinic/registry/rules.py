"""Pure decisions of the approval workflow (I.4, I.5)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from xmpp_clinic.registry.model import Device, DeviceState

ApprovalMode = str  # "manual" | "first-device" | "all" (config policy.device_approval)
Phone = tuple[object, ...]  # see phone()


def initial_state(
    mode: ApprovalMode, *, person_known: bool, new_devices: int, approved: int, limit: int
) -> DeviceState:
    """The state of a newly discovered device (I.4).

    - ``manual``: every device waits for IT.
    - ``first-device``: a person's very first device is approved, but only when it is the
      one device seen at first contact; with several at once nobody can tell which one is
      the hospital's, and after any device is known, later ones wait.
    - ``all`` (demo and tests only): approved, up to the per-person limit.
    """
    if approved >= limit:
        return DeviceState.PENDING
    if mode == "all":
        return DeviceState.APPROVED
    if mode == "first-device" and not person_known and new_devices == 1:
        return DeviceState.APPROVED
    return DeviceState.PENDING


def valid_until(now: datetime, days: int) -> datetime:
    """When an approval given now needs re-validation (I.5)."""
    return now + timedelta(days=days)


def counts_towards_limit(device: Device, now: datetime) -> bool:
    """Approved and unexpired devices count towards ``policy.max_devices_per_person``."""
    return device.usable(now)


def phone(device: Device) -> Phone:
    """What makes one phone: both OMEMO versions of a device id with the same identity
    key (one fingerprint, see registry.fingerprint) are one; without a key, a record is
    its own."""
    if device.fingerprint is not None:
        return (device.device_id, device.fingerprint)
    return (device.namespace, device.device_id)


def phones_towards_limit(devices: Iterable[Device], now: datetime) -> set[Phone]:
    """The phones that count towards ``policy.max_devices_per_person`` (I.4): a phone
    publishing both OMEMO versions has two approved records but is one device."""
    return {phone(device) for device in devices if counts_towards_limit(device, now)}


def expires(device: Device, now: datetime) -> bool:
    """An approved device whose approval ran out: the periodic task marks it expired."""
    return device.state is DeviceState.APPROVED and not device.usable(now)


def warn_of_expiry(device: Device, now: datetime, window: timedelta) -> bool:
    """An approved device whose approval ends within ``window``."""
    if not device.usable(now) or device.valid_until is None:
        return False
    return device.valid_until - now <= window
