"""``xmpp-clinic devices``: list, show, approve and revoke OMEMO devices (I.4, I.5, III.3).

Changes take effect on the running gateway's next message: each one bumps the
"devices" change counter in the same transaction. Notices to the person are queued and
sent by the running gateway.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    DeviceIdArg,
    JsonOption,
    NamespaceOption,
    PersonArg,
    ReasonOption,
    actor,
    fail,
    person,
    print_json,
    settings_from,
    verb_group,
    with_store,
)
from xmpp_clinic.clock import iso
from xmpp_clinic.config import Settings
from xmpp_clinic.limits import MAX_VALID_DAYS, MIN_VALID_DAYS
from xmpp_clinic.omemo import OMEMO2_NS, short_name
from xmpp_clinic.registry.model import Device, DeviceState
from xmpp_clinic.registry.service import (
    AmbiguousDevice,
    DeviceRegistry,
    InvalidRequest,
    RegistryError,
)

GROUP_NAME = "devices"
group = verb_group("OMEMO device registry: approve, revoke, inspect.")

T = TypeVar("T")


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
        short_name(device.namespace),
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
    jid: Annotated[
        str | None, typer.Option("--jid", parser=person, metavar="JID", help="Only this person.")
    ] = None,
    state: Annotated[DeviceState | None, typer.Option("--state", help="Only this state.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List devices (JSON fields: jid, namespace, device_id, state, fingerprint, valid_until)."""
    settings = settings_from(config)
    devices = with_registry(settings, lambda registry: registry.devices(jid, state))
    if as_json:
        print_json([device.as_json() for device in devices])
    elif devices:
        _table(devices)
    else:
        typer.echo("no devices")


@group.command("show")
def show(
    jid: PersonArg,
    device_id: DeviceIdArg,
    namespace: NamespaceOption = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Show one device, with its fingerprint as Conversations and Gajim display it."""
    settings = settings_from(config)
    device = with_registry(settings, lambda registry: registry.device(jid, device_id, namespace))
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
    jid: PersonArg,
    device_id: DeviceIdArg,
    valid_days: Annotated[
        int | None,
        typer.Option(
            "--valid-days",
            min=MIN_VALID_DAYS,
            max=MAX_VALID_DAYS,
            metavar="DAYS",
            help="Default: policy.default_valid_days",
        ),
    ] = None,
    asset: Annotated[
        str | None, typer.Option("--asset", metavar="ID", help="MDM asset id (III.3).")
    ] = None,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Approve (or re-validate) a device after comparing its fingerprint with the phone.

    A device id listed in both OMEMO versions with one identity key is one phone: both
    records are approved. With different keys, --namespace says which one.
    """
    settings = settings_from(config)
    devices = with_registry(
        settings,
        lambda registry: registry.approve_each(
            jid,
            device_id,
            actor=actor(),
            namespace=namespace,
            valid_days=valid_days,
            asset_id=asset,
        ),
    )
    for device in devices:
        until = iso(device.valid_until)
        typer.echo(f"approved {device.key} until {until[:10] if until else '-'}")
    if any(device.fingerprint is None for device in devices):
        typer.echo(
            "warning: fingerprint unknown (no bundle fetched): not compared; the device "
            "returns to pending when its key is first seen, approve it again then",
            err=True,
        )


@group.command("revoke")
def revoke(
    jid: PersonArg,
    device_id: DeviceIdArg,
    reason: ReasonOption,
    namespace: NamespaceOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a device (both OMEMO versions of one phone); refused from the next message on."""
    settings = settings_from(config)
    devices = with_registry(
        settings,
        lambda registry: registry.revoke_each(
            jid, device_id, actor=actor(), reason=reason, namespace=namespace
        ),
    )
    for device in devices:
        typer.echo(f"revoked {device.key}")


@group.command("revoke-all")
def revoke_all(
    jid: PersonArg,
    reason: ReasonOption,
    config: ConfigOption = None,
) -> None:
    """Lost phone: revoke every device of a person at once (III.3)."""
    settings = settings_from(config)
    devices = with_registry(
        settings, lambda registry: registry.revoke_all(jid, actor=actor(), reason=reason)
    )
    for device in devices:
        typer.echo(f"revoked {device.key}")
