"""Ad-hoc commands for hospital IT: list, approve, revoke devices (I.4, I.5, III.3).

The same operations as ``xmpp-clinic devices``, for admins (``xmpp.admins``) from any
XMPP client with ad-hoc commands (Gajim, Conversations, Psi), declared in the one style
of ``adhoc.py``. Each is two steps: a form, then the result. A session continued by a
different JID or a non-admin is dropped (``admin.py``), and the next step then starts
afresh and is refused.
"""

from __future__ import annotations

from typing import Any

from xmpp_clinic.clock import iso
from xmpp_clinic.limits import MAX_REASON_CHARS, MAX_VALID_DAYS, MIN_VALID_DAYS
from xmpp_clinic.omemo import (
    BY_SHORT,
    BY_URI,
    MAX_DEVICE_ID,
    MIN_DEVICE_ID,
    VERSIONS,
    device_id_or_none,
)
from xmpp_clinic.registry.model import MAX_ASSET_CHARS, Device, DeviceState
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp.adhoc import Command, CommandSet, Field, Request
from xmpp_clinic.xmpp.errors import FormError

# Left empty, a list field means "any" / "all" (an option cannot have an empty value:
# XEP-0004 3.3 requires one, so there is no such option).
NAMESPACE_OPTIONS = tuple((version.uri, version.short) for version in VERSIONS)
STATE_OPTIONS = tuple((state.value, state.value) for state in DeviceState)

PERSON = Field("jid", "Person (bare JID)", "jid-single", required=True)
DEVICE = Field("device_id", "Device id", required=True)
NAMESPACE = Field(
    "namespace", "OMEMO version (only if ambiguous)", "list-single", options=NAMESPACE_OPTIONS
)
REASON = Field(
    "reason", "Reason (kept in the audit log)", required=True, max_chars=MAX_REASON_CHARS
)


class DeviceCommand(Command):
    """A command on the device registry."""

    def __init__(self, registry: DeviceRegistry) -> None:
        self.registry = registry


def _device_id(request: Request) -> int:
    """The OMEMO device id (1 .. 2^31-1, as clients write it: omemo.device_id_or_none)."""
    device_id = device_id_or_none(request.required("device_id"))
    if device_id is None:
        raise FormError(f"device id must be a number from {MIN_DEVICE_ID} to {MAX_DEVICE_ID}")
    return device_id


def _valid_days(request: Request) -> int | None:
    """The approval's validity in days; None for the policy default (I.5)."""
    raw = request.text("valid_days")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or not MIN_VALID_DAYS <= int(raw) <= MAX_VALID_DAYS:
        raise FormError(
            f"valid days must be a whole number from {MIN_VALID_DAYS} to {MAX_VALID_DAYS}"
        )
    return int(raw)


def _namespace(request: Request) -> str | None:
    """The OMEMO version as its namespace URI; given as URI or short name (``omemo2``)."""
    raw = request.text("namespace")
    if not raw:
        return None
    version = BY_URI.get(raw) or BY_SHORT.get(raw)
    if version is None:
        raise FormError(f"unknown OMEMO version {raw!r}; use {' or '.join(BY_SHORT)}")
    return version.uri


def _line(device: Device) -> str:
    until = iso(device.valid_until)
    shown = until is not None and device.state is DeviceState.APPROVED
    return (
        f"{device.key}: {device.state.value}"
        + (f" until {until[:10]}" if shown and until else "")
        + f" [{device.display_fingerprint()}]"
    )


class ListDevices(DeviceCommand):
    node = "devices-list"
    name = "Devices: list"
    fields = (
        Field("jid", "Person (empty: everyone)", "jid-single"),
        Field("state", "State (empty: all)", "list-single", options=STATE_OPTIONS),
    )

    async def run(self, request: Request) -> list[str]:
        state_name = request.text("state")
        try:
            state = DeviceState(state_name) if state_name else None
        except ValueError:
            raise FormError(f"unknown device state {state_name!r}") from None
        person = request.jid("jid") if request.text("jid") else None
        devices = await self.registry.devices(person, state)
        return [_line(device) for device in devices] or ["no devices"]


class ApproveDevice(DeviceCommand):
    node = "devices-approve"
    name = "Devices: approve"
    fields = (
        PERSON,
        DEVICE,
        NAMESPACE,
        Field("valid_days", "Valid for days"),
        Field("asset", "MDM asset id", max_chars=MAX_ASSET_CHARS),
    )

    async def run(self, request: Request) -> list[str]:
        devices = await self.registry.approve_each(
            request.jid("jid"),
            _device_id(request),
            actor=request.actor,
            namespace=_namespace(request),
            valid_days=_valid_days(request),
            asset_id=request.text("asset") or None,
        )
        return [f"approved {_line(device)}" for device in devices]


class RevokeDevice(DeviceCommand):
    node = "devices-revoke"
    name = "Devices: revoke"
    fields = (PERSON, DEVICE, NAMESPACE, REASON)

    async def run(self, request: Request) -> list[str]:
        devices = await self.registry.revoke_each(
            request.jid("jid"),
            _device_id(request),
            actor=request.actor,
            reason=request.text("reason") or "revoked by IT",
            namespace=_namespace(request),
        )
        return [f"revoked {device.key}" for device in devices]


class RevokeAllDevices(DeviceCommand):
    node = "devices-revoke-all"
    name = "Devices: revoke all (lost phone)"
    fields = (PERSON, REASON)

    async def run(self, request: Request) -> list[str]:
        devices = await self.registry.revoke_all(
            request.jid("jid"), actor=request.actor, reason=request.text("reason") or "lost device"
        )
        return [f"revoked {device.key}" for device in devices]


COMMANDS = (ListDevices, ApproveDevice, RevokeDevice, RevokeAllDevices)


def attach(component: Any, registry: DeviceRegistry) -> CommandSet:
    """Offer the device commands on ``component`` to ``settings.xmpp.admins`` (I.5, III.3)."""
    commands = CommandSet(
        component, component.settings.xmpp, [command(registry) for command in COMMANDS]
    )
    commands.attach()
    return commands
