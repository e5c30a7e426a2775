"""What the gateway tells a person about their own devices (I.5); short, no jargon."""

from __future__ import annotations

from datetime import datetime

from xmpp_clinic.clock import as_utc
from xmpp_clinic.registry.model import Device, Notice


def _name(device: Device) -> str:
    label = f" '{device.label}'" if device.label else ""
    return f"Your device{label} (id {device.device_id})"


def _day(value: datetime | None) -> str:
    return as_utc(value).strftime("%Y-%m-%d") if value is not None else "further notice"


def pending(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} is waiting for approval by hospital IT "
        f"(fingerprint {device.display_fingerprint()}). Until then it cannot send or read "
        "messages in care threads.",
    )


def approved(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} is approved for care threads until {_day(device.valid_until)}.",
    )


def revoked(device: Device, reason: str) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} was revoked by hospital IT ({reason}). It can no longer send or "
        "read messages in care threads.",
    )


def key_changed(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} published a new identity key and needs approval again.",
    )


def key_after_approval(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} was approved before its identity key was known; now that it is "
        f"(fingerprint {device.display_fingerprint()}), it needs approval by hospital IT "
        "again.",
    )


def expiring(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} approval ends on {_day(device.valid_until)}; "
        "ask hospital IT to re-validate it.",
    )


def expired(device: Device) -> Notice:
    return Notice(
        device.jid,
        f"{_name(device)} approval has expired; it cannot send or read messages in care "
        "threads until hospital IT re-validates it.",
    )
