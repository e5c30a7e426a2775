"""``xmpp-clinic directory import|sync``: the hospital directory as the source of membership.

Both show the diff (added / changed / removed persons and memberships, and the thread
memberships that follow) before applying it, and apply nothing with ``--dry-run``. An
import that would remove more than ``directory.max_removal_share`` of the persons is
refused unless ``--force`` (IV.2, I.12). Bad rows are reported with their line and reason
and skipped. Persons who leave lose every membership (a running gateway kicks them, 321)
and all their devices are revoked ("left the directory", III.3).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

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
from xmpp_clinic.config import Settings
from xmpp_clinic.directory.csv_import import BadFile, Parsed, read_csv
from xmpp_clinic.directory.model import DirectoryError, TooManyRemovals
from xmpp_clinic.directory.service import DirectoryService, ImportResult
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.settings.directory import DirectorySettings
from xmpp_clinic.store import Store

GROUP_NAME = "directory"
group = typer.Typer(
    help="The hospital directory: import persons and groups from CSV or LDAP.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the diff; change nothing.")]
ForceOption = Annotated[
    bool,
    typer.Option("--force", help="Apply even past directory.max_removal_share."),
]


def _directory(settings: Settings) -> DirectorySettings:
    if settings.directory is None:
        fail(
            "[directory] is not configured (small deployment mode); "
            "add a [directory] section to the config to import a directory",
            EXIT_USAGE,
        )
    return settings.directory


def _apply(
    settings: Settings,
    read: Callable[[], Parsed],
    *,
    source: str,
    dry_run: bool,
    force: bool,
    json: bool,
) -> None:
    directory = _directory(settings)
    try:
        parsed = read()
    except DirectoryError as exc:
        fail(str(exc))
    for bad in parsed.bad_rows:
        typer.echo(f"skipped line {bad.line}: {bad.reason}", err=True)

    async def go(store: Store) -> ImportResult:
        service = DirectoryService(
            store,
            max_removal_share=directory.max_removal_share,
            registry=DeviceRegistry(store, settings.policy),
        )
        return await service.apply(
            parsed.directory, actor=actor(), source=source, dry_run=dry_run, force=force
        )

    try:
        result = with_store(settings, go)
    except TooManyRemovals as exc:
        fail(f"refused, nothing changed: {exc}")
    if json:
        print_json(_json(result, parsed))
        return
    for line in result.diff.lines():
        typer.echo(line)
    for change in result.threads:
        for jid in change.added:
            typer.echo(f"+ thread {change.thread} member {jid}")
        for jid in change.removed:
            typer.echo(f"- thread {change.thread} member {jid}")
    verb = "would change" if dry_run else "changed"
    typer.echo(f"{verb}: {result.diff.summary()}; {len(result.threads)} threads")
    if result.applied and result.left:
        typer.echo(f"left the directory: {len(result.left)}; devices revoked: {result.revoked}")
    if parsed.bad_rows:
        typer.echo(f"{len(parsed.bad_rows)} bad rows skipped (see above)")


def _json(result: ImportResult, parsed: Parsed) -> dict[str, Any]:
    d = result.diff
    return {
        "applied": result.applied,
        "added": [p.key for p in d.added],
        "changed": [after.key for _before, after in d.changed],
        "removed": [p.key for p in d.removed],
        "memberships_added": [[m.person, m.group] for m in d.memberships_added],
        "memberships_removed": [[m.person, m.group] for m in d.memberships_removed],
        "threads": [
            {"thread": c.thread, "added": list(c.added), "removed": list(c.removed)}
            for c in result.threads
        ],
        "left": list(result.left),
        "devices_revoked": result.revoked,
        "bad_rows": [{"line": b.line, "reason": b.reason} for b in parsed.bad_rows],
    }


@group.command("import")
def import_csv(
    file: Annotated[Path, typer.Argument(metavar="FILE.csv", help="CSV export (UTF-8).")],
    dry_run: DryRunOption = False,
    force: ForceOption = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Import persons and groups from CSV (columns: jid, name, staff_id, role, groups)."""
    settings = settings_from(config)
    domains = frozenset(settings.xmpp.user_domains)

    def read() -> Parsed:
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise BadFile(f"cannot read {file}: {exc.strerror}") from None
        return read_csv(data, domains)

    _apply(settings, read, source=f"csv:{file.name}", dry_run=dry_run, force=force, json=json)


@group.command("sync")
def sync(
    dry_run: DryRunOption = False,
    force: ForceOption = False,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Synchronise persons and groups from LDAP / Active Directory ([directory.ldap])."""
    settings = settings_from(config)
    ldap = _directory(settings).ldap
    if ldap is None:
        fail("[directory.ldap] is not configured: set url and base_dn", EXIT_USAGE)
    from xmpp_clinic.directory.ldap import read_ldap

    domains = frozenset(settings.xmpp.user_domains)
    _apply(
        settings,
        lambda: read_ldap(ldap, domains),
        source=f"ldap:{ldap.url}",
        dry_run=dry_run,
        force=force,
        json=json,
    )
