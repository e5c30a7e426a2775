"""``threads set-retention|close|delete``: a thread's retention and its deletion (I.7).

Added to the ``threads`` group of :mod:`xmpp_clinic.cli.threads` (through the module:
a ``group`` attribute here would make the CLI register the group twice).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated

import typer

from xmpp_clinic.bridge.documentation import open_copies
from xmpp_clinic.bridge.outbox import Outbox, Pending
from xmpp_clinic.cli import threads as threads_cli
from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    actor,
    fail,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.cli.purge import receipt_book
from xmpp_clinic.cli.threads import NameArg
from xmpp_clinic.records.keys import RecordsKeyError
from xmpp_clinic.retention.erasure import Eraser, Erasure
from xmpp_clinic.retention.policy import InvalidPeriod, format_period, parse_period
from xmpp_clinic.retention.server_mam import server_archive
from xmpp_clinic.retention.threads import ThreadRetentionService
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadNotFound


def _period(raw: str) -> str:
    if raw != "default":
        try:
            parse_period(raw)
        except InvalidPeriod as exc:
            raise typer.BadParameter(str(exc)) from None
    return raw


@threads_cli.group.command("set-retention")
def set_retention(
    name: NameArg,
    messages: Annotated[
        str,
        typer.Option(
            "--messages",
            parser=_period,
            metavar="PERIOD",
            help="How long messages are kept: 30d, 12h, 90m, or 'default'.",
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Give a thread its own message retention period (I.7)."""
    minutes = None if messages == "default" else parse_period(messages)
    settings = settings_from(config)
    try:
        with_store(
            settings,
            lambda s: ThreadRetentionService(s).set_period(name, minutes, actor=actor()),
        )
    except ThreadNotFound as exc:
        fail(str(exc))
    shown = format_period(minutes) if minutes is not None else "the default"
    typer.echo(f"messages of {name} are kept {shown}")


@threads_cli.group.command("close")
def close(name: NameArg, config: ConfigOption = None) -> None:
    """Start the thread's retention period now (the case ended, I.7); with
    ``[bridge.hl7] host``, a documented thread's transcript is queued for the HIS (I.6)."""
    settings = settings_from(config)
    hl7 = settings.bridge.hl7
    who = actor()

    async def go(store: Store) -> tuple[datetime, Pending | None]:
        # The copies open first: a missing key refuses before anything changes.
        copies = await open_copies(store, settings.records.key_file) if hl7.host else None
        at = await ThreadRetentionService(store).close(name, actor=who)
        if copies is None:
            return at, None
        return at, await Outbox(store, copies, hl7).push_if_new(name, actor=who)

    try:
        at, queued = with_store(settings, go)
    except ThreadNotFound as exc:
        fail(str(exc))
    except RecordsKeyError as exc:
        fail(f"not closed: its documentation cannot be read for the HIS: {exc}")
    typer.echo(f"closed {name}: its retention period started {at.isoformat()}")
    if queued is not None:
        typer.echo(f"queued MDM^{queued.event} v{queued.version} for the HIS ({queued.control_id})")


@threads_cli.group.command("delete")
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking.")] = False,
    settle: Annotated[
        float,
        typer.Option(
            "--settle",
            min=0,
            max=60,
            metavar="SECONDS",
            help="Wait between kicking members and deleting (running gateway).",
        ),
    ] = 2.0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Kick the members, purge the archive with a receipt, delete the thread (I.7)."""
    if not yes and not typer.confirm(f"Delete thread {name} and its whole archive?"):
        fail("not deleted", EXIT_USAGE)
    settings = settings_from(config)

    def go(store: Store) -> Awaitable[Erasure]:
        eraser = Eraser(
            store, receipt_book(settings, store), batch=settings.retention.purge_batch,
            server=server_archive(settings.retention), component=settings.xmpp.component_jid,
        )  # fmt: skip
        return eraser.delete_thread(name, actor=actor(), settle=settle)

    try:
        erasure = with_store(settings, go)
    except ThreadNotFound as exc:
        fail(str(exc))
    receipt = erasure.receipt
    if as_json:
        print_json(receipt.document())
        return
    for item in receipt.body["items"]:
        if item["what"] == "server-archive" and not item["done"]:
            typer.echo(f"server {item['server']}: {item['user']} NOT DONE: {item['detail']}")
    typer.echo(f"deleted thread {name}; receipt {receipt.id}")
