"""The registry's vocabulary as plain data: devices, their states, notices (I.4, I.5, III.3)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from xmpp_clinic.clock import as_utc
from xmpp_clinic.clock import iso as iso  # transitional: see SHORT_NAMES below
from xmpp_clinic.omemo import NAMESPACES, short_name
from xmpp_clinic.registry.fingerprint import format_fingerprint

# transitional: remove (with the "iso as iso" re-export above) when xmpp/device_commands.py
# imports omemo.short_name and clock.iso
SHORT_NAMES = {uri: short_name(uri) for uri in NAMESPACES}


# An MDM asset id is stored in 128 characters (store.models.devices), one line.
MAX_ASSET_CHARS = 128


class DeviceState(enum.Enum):
    """Where a device stands; only ``approved`` devices may send or read (I.4)."""

    PENDING = "pending"
    APPROVED = "approved"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, order=True)
class DeviceKey:
    """A device's identity on the wire: the person, the OMEMO version, the device id."""

    jid: str
    namespace: str
    device_id: int

    def __str__(self) -> str:
        return f"{self.jid}/{short_name(self.namespace)}/{self.device_id}"


@dataclass(frozen=True)
class Device:
    """A device as the registry knows it (I.4, I.5, III.3)."""

    key: DeviceKey
    state: DeviceState
    fingerprint: str | None  # 64 lowercase hex digits of the Curve25519 identity key
    identity_key: bytes | None  # as published: Curve25519 (legacy) or Ed25519 (OMEMO 2)
    active: bool  # still announced in the person's PEP device list
    label: str | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    state_changed_at: datetime | None = None
    approved_by: str | None = None
    approved_at: datetime | None = None
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    reason: str | None = None
    asset_id: str | None = None
    valid_until: datetime | None = None

    @property
    def jid(self) -> str:
        return self.key.jid

    @property
    def namespace(self) -> str:
        return self.key.namespace

    @property
    def device_id(self) -> int:
        return self.key.device_id

    def usable(self, now: datetime) -> bool:
        """Approved and not past ``valid_until``: an expired device is refused at once (I.5)."""
        if self.state is not DeviceState.APPROVED:
            return False
        return self.valid_until is None or as_utc(self.valid_until) > now

    def display_fingerprint(self, style: str = "conversations") -> str:
        return format_fingerprint(self.fingerprint, style) if self.fingerprint else "unknown"

    def as_json(self) -> dict[str, object]:
        """The fields ``devices list --json`` prints (a stable operator interface)."""
        return {
            "jid": self.jid,
            "namespace": self.namespace,
            "device_id": self.device_id,
            "state": self.state.value,
            "active": self.active,
            "fingerprint": self.fingerprint,
            "label": self.label,
            "valid_until": iso(self.valid_until),
            "asset_id": self.asset_id,
            "approved_by": self.approved_by,
            "approved_at": iso(self.approved_at),
            "revoked_by": self.revoked_by,
            "revoked_at": iso(self.revoked_at),
            "reason": self.reason,
            "first_seen": iso(self.first_seen),
            "last_seen": iso(self.last_seen),
        }


@dataclass(frozen=True)
class ObservedDevice:
    """A device as found in a person's PEP: its label and identity key, when known."""

    label: str | None = None
    identity_key: bytes | None = None  # 32 bytes, see registry.fingerprint


@dataclass(frozen=True)
class Notice:
    """A short message from the gateway to a person about their device (I.5)."""

    jid: str
    text: str
    queue_id: int | None = field(default=None, compare=False)  # set once queued
