"""An immutable view of the registry for deciding on messages (I.4, I.5).

The pipeline decides on every message from a snapshot held in memory and replaced when
the "devices" change counter moves, so a decision costs no database round trip and a
revocation by the CLI applies to the very next message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from xmpp_clinic.registry.model import Device, DeviceKey


class RegistrySnapshot:
    """Every known device, indexed by person and by (namespace, device id)."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self._devices: dict[DeviceKey, Device] = {}
        self._by_person: dict[tuple[str, str], list[Device]] = {}
        self._by_id: dict[tuple[str, int], list[Device]] = {}
        for device in devices:
            self._devices[device.key] = device
            self._by_person.setdefault((device.jid, device.namespace), []).append(device)
            self._by_id.setdefault((device.namespace, device.device_id), []).append(device)

    def __len__(self) -> int:
        return len(self._devices)

    def get(self, key: DeviceKey) -> Device | None:
        return self._devices.get(key)

    def usable_ids(self, jid: str, namespace: str, now: datetime) -> frozenset[int]:
        """Device ids of ``jid`` that may send and read now (approved, not expired)."""
        devices = self._by_person.get((jid, namespace), ())
        return frozenset(device.device_id for device in devices if device.usable(now))

    def active_usable_ids(self, jid: str, namespace: str, now: datetime) -> frozenset[int]:
        """As :meth:`usable_ids`, limited to devices still announced in PEP."""
        devices = self._by_person.get((jid, namespace), ())
        return frozenset(d.device_id for d in devices if d.usable(now) and d.active)

    def knows(self, namespace: str, device_id: int, jid: str | None = None) -> bool:
        """Whether the registry has ever seen this device id (of ``jid``, when given)."""
        if jid is not None:
            return DeviceKey(jid, namespace, device_id) in self._devices
        return (namespace, device_id) in self._by_id

    def usable_owners(self, namespace: str, device_id: int, now: datetime) -> frozenset[str]:
        """Persons with a usable device of this id (legacy keys carry no JID)."""
        devices = self._by_id.get((namespace, device_id), ())
        return frozenset(device.jid for device in devices if device.usable(now))
