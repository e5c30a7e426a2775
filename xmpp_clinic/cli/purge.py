"""``xmpp-clinic purge``: retention by hand, deletion receipts and their check (I.7, IV.8).

``purge [--dry-run] [--thread NAME]`` deletes what is past its period now (the running
gateway does the same on its schedule); ``purge receipts`` lists the signed receipts;
``purge verify-receipt FILE`` checks one against the gateway's key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

from xmpp_clinic.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    actor,
    fail,
    plural,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import Settings
from xmpp_clinic.retention.purge import PurgeOutcome
from xmpp_clinic.retention.receipts import (
    ReceiptBook,
    ReceiptInvalid,
    SignedReceipt,
    load_or_create_key,
    load_public_key,
    verify,
)
from xmpp_clinic.retention.scheduler import purger as configured_purger
from xmpp_clinic.store import Store

GROUP_NAME = "purge"
group = typer.Typer(
    help="Delete what is past its retention period; list and check deletion receipts.",
    invoke_without_command=True,
    rich_markup_mode=None,
)
# Below this many messages a purge is quick; above it, show a progress bar.
PROGRESS_FROM = 5000


def receipt_book(settings: Settings, store: Store) -> ReceiptBook:
    r = settings.retention
    return ReceiptBook(store, r.receipt_key_file, r.receipts_directory)


def _run(settings: Settings, thread: str | None, dry_run: bool, quiet: bool) -> PurgeOutcome:
    async def go(store: Store) -> PurgeOutcome:
        purger = configured_purger(store, settings)
        if dry_run:
            return await purger.run(actor=actor(), rule="manual", thread=thread, dry_run=True)
        total = sum(d.count for d in await purger.due(utcnow(), thread))
        console = Console(stderr=True)
        with Progress(
            "purging", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True,
            disable=quiet or total < PROGRESS_FROM or not console.is_terminal,
        ) as bar:  # fmt: skip
            task = bar.add_task("purge", total=total)
            return await purger.run(
                actor=actor(), rule="manual", thread=thread,
                progress=lambda n: bar.advance(task, n),
            )  # fmt: skip

    return with_store(settings, go)


@group.callback()
def purge(
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what is due; delete nothing.")
    ] = False,
    thread: Annotated[
        str | None, typer.Option("--thread", metavar="NAME", help="Only this thread's messages.")
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Delete messages (with their delivery records, part sets and documentation copies),
    audit metadata and stale devices past their retention (I.7)."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_from(config)
    outcome = _run(settings, thread, dry_run, as_json)
    if thread is not None and not outcome.threads:
        fail(f"no thread named {thread!r}", EXIT_USAGE)
    if as_json:
        print_json(_outcome_json(outcome, dry_run))
        return
    if dry_run:
        for due in outcome.threads:
            typer.echo(f"{due.name}\t{due.policy.describe()}\t{plural(due.count, 'message')} due")
        if thread is None:
            typer.echo(f"audit metadata: {plural(outcome.audit_events, 'event')} due")
        return
    linked = outcome.linked
    copies = "copy" if linked.documentation == 1 else "copies"
    typer.echo(
        f"purged {plural(outcome.messages, 'message')} from {plural(len(outcome.ranges), 'thread')}"
        f", {plural(outcome.audit_events, 'audit event')}, {plural(outcome.devices, 'device')}"
        f", {plural(linked.deliveries, 'delivery record')}, {plural(linked.part_sets, 'part set')}"
        f", {linked.documentation} documentation {copies}"
    )
    for r in outcome.server:
        done = f"done ({r.count} deleted)" if r.done and r.count is not None else "done"
        state = done if r.done else f"NOT DONE: {r.detail}"
        typer.echo(f"server {r.server}: {r.action} {r.user} with {r.peer}: {state}")
    if outcome.receipt is not None:
        typer.echo(f"receipt {outcome.receipt.id}")


def _outcome_json(outcome: PurgeOutcome, dry_run: bool) -> dict[str, Any]:
    return {
        "dry_run": dry_run,
        "threads": [
            {"thread": d.name, "policy": d.policy.describe(), "due": d.count}
            for d in outcome.threads
        ],
        "messages": outcome.messages,
        "audit_events": outcome.audit_events,
        "devices": outcome.devices,
        "delivery_records": outcome.linked.deliveries,
        "part_sets": outcome.linked.part_sets,
        "documentation_copies": outcome.linked.documentation,
        "server": [r.as_json() for r in outcome.server],
        "receipt": outcome.receipt.document() if outcome.receipt else None,
    }


@group.command("receipts")
def receipts(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List the signed deletion receipts, oldest first (I.7)."""
    settings = settings_from(config)
    found = with_store(settings, lambda store: receipt_book(settings, store).list())
    if as_json:
        print_json([r.document() for r in found])
        return
    for r in found:
        what = ", ".join(str(i.get("what")) for i in r.body.get("items", []))
        typer.echo(f"{r.id}\t{r.body['at']}\t{r.kind}\t{r.body.get('actor')}\t{what}")
    if not found:
        typer.echo("no receipts")


@group.command("verify-receipt")
def verify_receipt(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A receipt (JSON).")],
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", metavar="PEM", help="Check against this key instead."),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Exit 0 when FILE is a receipt signed by the gateway's key and unchanged (I.7)."""
    try:
        receipt = SignedReceipt.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        fail(f"cannot read {file} ({exc.strerror})", EXIT_USAGE)
    except ReceiptInvalid as exc:
        fail(f"receipt INVALID: {exc}")
    if public_key is None:
        key_file = settings_from(config).retention.receipt_key_file
        if not key_file.exists():
            fail(f"no receipt key at {key_file} (retention.receipt_key_file)", EXIT_USAGE)
        public_key = key_file
    try:
        verify(receipt, load_public_key(public_key))
    except ReceiptInvalid as exc:
        typer.echo(f"receipt INVALID: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(f"receipt {receipt.id} valid: {receipt.kind} at {receipt.body['at']}")


@group.command("public-key")
def public_key(config: ConfigOption = None) -> None:
    """Print the receipts' public key (PEM) for auditors; creates the key pair if missing."""
    key_file = settings_from(config).retention.receipt_key_file
    created = not key_file.exists()
    key = load_or_create_key(key_file)
    if created:
        typer.echo(f"created receipt key {key_file} (mode 0600)", err=True)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    typer.echo(pem.decode().strip())
