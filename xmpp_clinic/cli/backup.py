"""``xmpp-clinic backup create|verify|restore|prune``: encrypted backups (I.9, I.7).

Backups are encrypted to the hospital's OpenPGP keys (``backup.recipients``, keyring
``backup.gnupghome``) and signed with the gateway's key; ``verify`` needs public keys
only; ``restore`` needs the hospital's private key (``--gnupghome``) and re-applies the
deletions recorded after the backup (``retention.receipts_directory``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress
from sqlalchemy import func, select

from xmpp_clinic.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    actor,
    fail,
    plural,
    run,
    settings_from,
    verb_group,
    with_store,
)
from xmpp_clinic.config import Settings
from xmpp_clinic.retention import backup as backups
from xmpp_clinic.retention.reapply import AnchorMismatch, Reapplied, reapply
from xmpp_clinic.retention.receipts import ReceiptBook, ReceiptInvalid, read_folder
from xmpp_clinic.retention.snapshot import StoreNotEmpty
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.retention import ThreadRetention

GROUP_NAME = "backup"
group = verb_group("Encrypted backups: create, verify, restore, prune.")

GnupgOption = Annotated[
    Path | None,
    typer.Option("--gnupghome", metavar="DIR", help="GnuPG home (default: backup.gnupghome)."),
]


def _bar(label: str) -> Progress:
    """A progress bar on stderr, only where a person watches (a terminal)."""
    console = Console(stderr=True)
    return Progress(
        label, BarColumn(), MofNCompleteColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )  # fmt: skip


@group.command("create")
def create(
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Backup file.")],
    config: ConfigOption = None,
) -> None:
    """Write an encrypted, signed snapshot of the store while the gateway runs (I.9)."""
    settings = settings_from(config)
    with _bar("backing up") as bar:
        task = bar.add_task("rows", total=None)
        try:
            manifest = with_store(
                settings,
                lambda store: backups.create(
                    store, settings.backup, output, lambda n: bar.advance(task, n)
                ),
            )
        except backups.BackupError as exc:
            fail(str(exc))
    rows = sum(int(v) for v in manifest.data["counts"].values())
    typer.echo(f"wrote {output}: {plural(rows, 'row')}, encrypted to "
               f"{plural(len(settings.backup.recipients), 'key')}")  # fmt: skip


def _home(settings: Settings | None, given: Path | None) -> Path:
    home = given or (settings.backup.gnupghome if settings else None)
    if home is None:
        fail("give --gnupghome or set backup.gnupghome", EXIT_USAGE)
    return home


@group.command("verify")
def verify(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    gnupghome: GnupgOption = None,
    config: ConfigOption = None,
) -> None:
    """Check the signature and the manifest; no private key needed (I.9)."""
    settings = settings_from(config) if gnupghome is None else None
    try:
        manifest, signer = backups.verify(file, _home(settings, gnupghome))
    except backups.BackupError as exc:
        typer.echo(f"backup INVALID: {exc}")
        raise typer.Exit(EXIT_FAILURE) from None
    typer.echo(f"backup {file} valid: taken {manifest.data['created_at']} from "
               f"{manifest.data['backend']}, signed by {signer}")  # fmt: skip


@group.command("restore")
def restore(
    file: Annotated[Path, typer.Argument(metavar="FILE")],
    store_url: Annotated[str, typer.Option("--store", metavar="URL", help="An empty store.")],
    gnupghome: GnupgOption = None,
    config: ConfigOption = None,
) -> None:
    """Restore into an empty store and re-apply later deletions (I.9, I.7)."""
    settings = settings_from(config)
    home = _home(settings, gnupghome)
    retention = settings.retention

    async def go() -> tuple[int, Reapplied]:
        store = Store(store_url)
        try:
            with _bar("restoring") as bar:
                task = bar.add_task("rows", total=None)
                manifest, rows = await backups.restore(
                    file, store, home, settings.backup.gpg_binary, lambda n: bar.advance(task, n)
                )
            book = ReceiptBook(store, retention.receipt_key_file, None)
            done = await reapply(
                store, read_folder(retention.receipts_directory), book.key.public_key(), book,
                since=manifest.created_at, actor=actor(),
            )  # fmt: skip
            return rows, done
        finally:
            await store.close()

    try:
        rows, done = run(go())
    except StoreNotEmpty as exc:
        fail(str(exc), EXIT_USAGE)
    except (backups.BackupError, ReceiptInvalid, AnchorMismatch) as exc:
        fail(str(exc))
    typer.echo(f"restored {plural(rows, 'row')}; re-applied "
               f"{plural(len(done.receipts), 'deletion receipt')} ({done.messages} messages, "
               f"{done.threads} threads, {done.persons} persons)")  # fmt: skip


@group.command("prune")
def prune(
    directory: Annotated[
        Path | None, typer.Option("--directory", metavar="DIR", help="Default: backup.directory.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Delete backups older than the longest retention period (I.7)."""
    settings = settings_from(config)
    folder = directory or settings.backup.directory
    if folder is None:
        fail("give --directory or set backup.directory", EXIT_USAGE)

    async def longest(store: Store) -> int:
        async with store.session() as session:
            minutes = await session.scalar(select(func.max(ThreadRetention.messages_minutes)))
        r = settings.retention
        return max(r.messages_days, r.audit_metadata_days, math.ceil((minutes or 0) / 1440))

    days = with_store(settings, longest)
    removed = backups.prune(folder, days)
    for path in removed:
        typer.echo(f"deleted {path}")
    typer.echo(f"kept backups younger than {days} days; deleted {plural(len(removed), 'file')}")
