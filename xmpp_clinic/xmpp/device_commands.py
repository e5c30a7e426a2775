"""XEP-0050 ad-hoc commands for hospital IT: list, approve, revoke devices (I.4, I.5, III.3).

The same operations as ``xmpp-clinic devices``, for admins (``xmpp.admins``) from any
XMPP client with ad-hoc commands (Gajim, Conversations, Psi). Each command is two steps:
a form, then the result. Who may run or continue them is decided in ``admin.py``, shared
with the thread commands: a session continued by a different JID or a non-admin is
dropped, and the next step then starts afresh and is refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slixmpp.exceptions import XMPPError

from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import SHORT_NAMES, Device, DeviceState, iso
from xmpp_clinic.registry.service import DeviceRegistry, RegistryError
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp.admin import CommandAccess

log = logging.getLogger(__name__)

Values = dict[str, Any]
Field = tuple[str, str, str, bool]  # var, type, label, required
NAMESPACE_OPTIONS = ("", LEGACY_NS, OMEMO2_NS)
MAX_VALID_DAYS = 3650  # ten years; re-validation is the point of expiry (I.5)


@dataclass(frozen=True)
class DeviceCommand:
    """One ad-hoc command: its node, its form fields and what it does."""

    node: str
    name: str
    fields: tuple[Field, ...]
    run: Callable[[DeviceRegistry, Values, str], Awaitable[Any]]


def _text(values: Values, name: str) -> str:
    value = values.get(name)
    return str(value).strip() if value not in (None, "") else ""


def _device_id(values: Values) -> int:
    raw = _text(values, "device_id")
    if not raw.isdigit():
        raise RegistryError("device id must be a number")
    return int(raw)


def _valid_days(values: Values) -> int | None:
    """The approval's validity in days, 1..MAX_VALID_DAYS; None for the policy default (I.5)."""
    raw = _text(values, "valid_days")
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_VALID_DAYS:
        raise RegistryError(f"valid days must be a whole number from 1 to {MAX_VALID_DAYS}")
    return int(raw)


def _namespace(values: Values) -> str | None:
    return _text(values, "namespace") or None


def _line(device: Device) -> str:
    until = iso(device.valid_until)
    return (
        f"{device.key}: {device.state.value}"
        + (f" until {until[:10]}" if until and device.state is DeviceState.APPROVED else "")
        + f" [{device.display_fingerprint()}]"
    )


async def _list(registry: DeviceRegistry, values: Values, _actor: str) -> list[str]:
    state_name = _text(values, "state")
    state = DeviceState(state_name) if state_name else None
    devices = await registry.devices(_text(values, "jid") or None, state)
    return [_line(device) for device in devices] or ["no devices"]


async def _approve(registry: DeviceRegistry, values: Values, actor: str) -> list[str]:
    device = await registry.approve(
        _text(values, "jid"),
        _device_id(values),
        actor=actor,
        namespace=_namespace(values),
        valid_days=_valid_days(values),
        asset_id=_text(values, "asset") or None,
    )
    return [f"approved {_line(device)}"]


async def _revoke(registry: DeviceRegistry, values: Values, actor: str) -> list[str]:
    device = await registry.revoke(
        _text(values, "jid"),
        _device_id(values),
        actor=actor,
        reason=_text(values, "reason") or "revoked by IT",
        namespace=_namespace(values),
    )
    return [f"revoked {device.key}"]


async def _revoke_all(registry: DeviceRegistry, values: Values, actor: str) -> list[str]:
    reason = _text(values, "reason") or "lost device"
    devices = await registry.revoke_all(_text(values, "jid"), actor=actor, reason=reason)
    return [f"revoked {device.key}" for device in devices]


_JID: Field = ("jid", "jid-single", "Person (bare JID)", True)
_DEVICE: Field = ("device_id", "text-single", "Device id", True)
_NS: Field = ("namespace", "list-single", "OMEMO version (only if ambiguous)", False)
_REASON: Field = ("reason", "text-single", "Reason (kept in the audit log)", True)

COMMANDS = (
    DeviceCommand(
        "devices-list",
        "Devices: list",
        (
            ("jid", "jid-single", "Person (empty: everyone)", False),
            ("state", "list-single", "State (empty: all)", False),
        ),
        _list,
    ),
    DeviceCommand(
        "devices-approve",
        "Devices: approve",
        (
            _JID,
            _DEVICE,
            _NS,
            ("valid_days", "text-single", "Valid for days", False),
            ("asset", "text-single", "MDM asset id", False),
        ),
        _approve,
    ),
    DeviceCommand("devices-revoke", "Devices: revoke", (_JID, _DEVICE, _NS, _REASON), _revoke),
    DeviceCommand(
        "devices-revoke-all", "Devices: revoke all (lost phone)", (_JID, _REASON), _revoke_all
    ),
)


class DeviceCommands:
    """Registers :data:`COMMANDS` on the component and runs them for admins."""

    def __init__(self, component: Any, registry: DeviceRegistry) -> None:
        self._component = component
        self._registry = registry
        self._access = CommandAccess(component.settings.xmpp)
        adhoc = component.plugin["xep_0050"]
        for command in COMMANDS:
            adhoc.add_command(
                jid=component.boundjid.bare,
                node=command.node,
                name=command.name,
                handler=self._starter(command),
            )
        self._access.guard(component, {command.node: True for command in COMMANDS})

    def _starter(self, command: DeviceCommand) -> Callable[[Any, dict[str, Any]], Any]:
        def start(iq: Any, session: dict[str, Any]) -> dict[str, Any]:
            if not self._access.is_admin(iq["from"]):
                raise XMPPError("forbidden", "Only hospital IT admins may manage devices.")
            session["payload"] = self._form(command)
            session["next"] = self._finisher(command)
            session["has_next"] = False
            return session

        return start

    def _form(self, command: DeviceCommand) -> Any:
        form = self._component.plugin["xep_0004"].make_form("form", command.name)
        for var, ftype, label, required in command.fields:
            field = form.add_field(var=var, ftype=ftype, label=label, required=required)
            if var == "namespace":
                for option in NAMESPACE_OPTIONS:
                    field.add_option(label=SHORT_NAMES.get(option, "any"), value=option)
            if var == "state":
                for state in ("", *(s.value for s in DeviceState)):
                    field.add_option(label=state or "all", value=state)
        return form

    def _finisher(self, command: DeviceCommand) -> Callable[[Any, dict[str, Any]], Awaitable[Any]]:
        async def finish(payload: Any, session: dict[str, Any]) -> dict[str, Any]:
            values: Values = payload.get_values() if hasattr(payload, "get_values") else {}
            actor = f"xmpp:{session['from'].bare}"
            try:
                lines = await command.run(self._registry, values, actor)
                notes = [("info", line) for line in lines]
            except (RegistryError, StoreUnavailable, ValueError) as exc:
                notes = [("error", str(exc))]
            session["payload"] = None
            session["next"] = None
            session["has_next"] = False
            session["notes"] = notes
            return session

        return finish


def attach(component: Any, registry: DeviceRegistry) -> DeviceCommands:
    """Offer the device commands on ``component`` to ``settings.xmpp.admins`` (I.5, III.3)."""
    return DeviceCommands(component, registry)
