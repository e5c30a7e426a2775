"""``xmpp-clinic devices``: list, show, approve and revoke OMEMO devices (I.4, I.5, III.3).

Changes take effect on the running gateway's next message: each one bumps the
"devices" change counter in the same transaction. Notices to the person are queued and
sent by the running gateway.
"""

from __future__ import annotations

import enum
import getpass
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    fail,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.config import Settings
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import SHORT_NAMES, Device, DeviceState, iso
from xmpp_clinic.registry.service import (
    AmbiguousDevice,
    DeviceRegistry,
    InvalidRequest,
    RegistryError,
)

GROUP_NAME = "devices"
group = typer.Typer(help="OMEMO device registry: approve, revoke, inspect.", no_args_is_help=True)

T = TypeVar("T")


class State(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    revoked = "revoked"
    expired = "expired"


class Namespace(enum.StrEnum):
    legacy = LEGACY_NS
    omemo2 = OMEMO2_NS
    omemo = "omemo"  # short names, as the table prints them
    omemo_2 = "omemo2"


_NS = {"omemo": LEGACY_NS, "omemo2": OMEMO2_NS}

NamespaceOption = Annotated[
    Namespace | None,
    typer.Option(
        "--namespace",
        help="eu.siacs.conversations.axolotl (or 'omemo') / urn:xmpp:omemo:2 (or 'omemo2')",
        show_default=False,
    ),
]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]


def actor() -> str:
    """Who made a change from the command line, for the audit log."""
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:
        return "cli:unknown"


def _require_reason(reason: str) -> str:
    """A revocation needs a reason for the audit log (I.5, III.3); exit 2 without one."""
    if not reason.strip():
        fail("--reason must not be empty: say why (it is kept in the audit log)", EXIT_USAGE)
    return reason.strip()


def _namespace(value: Namespace | None) -> str | None:
    return None if value is None else _NS.get(value.value, value.value)


def with_registry(settings: Settings, action: Callable[[DeviceRegistry], Awaitable[T]]) -> T:
    """Migrate the store, run ``action`` on the registry, map registry errors to exits."""

    try:
        return with_store(settings, lambda store: action(DeviceRegistry(store, settings.policy)))
    except (AmbiguousDevice, InvalidRequest) as exc:
        fail(str(exc), EXIT_USAGE)
    except RegistryError as exc:
        fail(str(exc))


def _row(device: Device) -> list[str]:
    until = iso(device.valid_until)
    return [
        device.jid,
        SHORT_NAMES.get(device.namespace, device.namespace),
        str(device.device_id),
        device.state.value + ("" if device.active else " (inactive)"),
        until[:10] if until else "-",
        device.display_fingerprint(),
    ]


def _table(devices: list[Device]) -> None:
    header = ["JID", "NS", "DEVICE", "STATE", "VALID UNTIL", "FINGERPRINT"]
    rows = [header, *(_row(device) for device in devices)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        typer.echo("  ".join([*cells, row[-1]]))


@group.command("list")
def list_devices(
    jid: Annotated[str | None, typer.Option("--jid", help="Only this person.")] = None,
    state: Annotated[State | None, typer.Option("--state", help="Only this state.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List devices (JSON fields: jid, namespace, device_id, state, fingerprint, valid_until)."""
    settings = settings_from(config)
    wanted = DeviceState(state.value) if state is not None else None
    devices = with_registry(settings, lambda registry: registry.devices(jid, wanted))
    if as_json:
        print_json([device.as_json() for device in devices])
    elif devices:
        _table(devices)
    else:
        typer.echo("no devices")


@group.command("show")
def show(
    jid: Annotated[str, typer.Argument(help="The person's bare JID.")],
    device_id: Annotated[int, typer.Argument(help="The OMEMO device id.")],
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one device, with its fingerprint as Conversations and Gajim display it."""
    settings = settings_from(config)
    ns = _namespace(namespace)
    device = with_registry(settings, lambda registry: registry.device(jid, device_id, ns))
    if as_json:
        print_json(device.as_json())
        return
    for name, value in device.as_json().items():
        if name != "fingerprint":
            typer.echo(f"{name + ':':14} {'-' if value is None else value}")
    typer.echo(f"{'fingerprint:':14} {device.display_fingerprint()}  (Conversations, Dino)")
    gajim = device.display_fingerprint("gajim").replace("\n", " / ")
    typer.echo(f"{'':14} {gajim}  (Gajim)")
    if device.namespace == OMEMO2_NS and device.identity_key is not None:
        typer.echo(f"{'ed25519 key:':14} {device.identity_key.hex()}  (Kaidan)")


@group.command("approve")
def approve(
    jid: Annotated[str, typer.Argument(help="The person's bare JID.")],
    device_id: Annotated[int, typer.Argument(help="The OMEMO device id.")],
    valid_days: Annotated[
        int | None,
        typer.Option("--valid-days", min=1, max=3650, help="Default: policy.default_valid_days"),
    ] = None,
    asset: Annotated[str | None, typer.Option("--asset", help="MDM asset id (III.3).")] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve (or re-validate) a device after comparing its fingerprint with the phone."""
    settings = settings_from(config)
    ns = _namespace(namespace)
    device = with_registry(
        settings,
        lambda registry: registry.approve(
            jid, device_id, actor=actor(), namespace=ns, valid_days=valid_days, asset_id=asset
        ),
    )
    until = iso(device.valid_until)
    typer.echo(f"approved {device.key} until {until[:10] if until else '-'}")
    if device.fingerprint is None:
        typer.echo(
            "warning: fingerprint unknown (no bundle fetched): not compared; the device "
            "returns to pending when its key is first seen, approve it again then",
            err=True,
        )


@group.command("revoke")
def revoke(
    jid: Annotated[str, typer.Argument(help="The person's bare JID.")],
    device_id: Annotated[int, typer.Argument(help="The OMEMO device id.")],
    reason: ReasonOption,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a device; it is refused from the next message on (I.5)."""
    reason = _require_reason(reason)
    settings = settings_from(config)
    ns = _namespace(namespace)
    device = with_registry(
        settings,
        lambda registry: registry.revoke(
            jid, device_id, actor=actor(), reason=reason, namespace=ns
        ),
    )
    typer.echo(f"revoked {device.key}")


@group.command("revoke-all")
def revoke_all(
    jid: Annotated[str, typer.Argument(help="The person's bare JID.")],
    reason: ReasonOption,
    config: ConfigOption = None,
) -> None:
    """Lost phone: revoke every device of a person at once (III.3)."""
    reason = _require_reason(reason)
    settings = settings_from(config)
    devices = with_registry(
        settings, lambda registry: registry.revoke_all(jid, actor=actor(), reason=reason)
    )
    for device in devices:
        typer.echo(f"revoked {device.key}")
