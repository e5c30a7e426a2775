"""``xmpp-clinic records show``: read a documented thread's copies, audited (I.6, IV.4).

For hospital IT: what the documentation member stored for a thread, decrypted with the
``[records] key_file`` key, in order, with sender and time; gaps (messages that carried
no key for the documentation service) are shown as such. Every read is an audit event
naming who read which thread and which window.

Attachments (files sent as ``aesgcm://`` links) are listed under their message with
name, type, size and SHA-256; ``records attachment NAME SEQ --output FILE`` writes one
of them (the cleaned file, decrypted) to a new file, also audited.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from xmpp_clinic.archive.audit import AuditEvent, AuditLog
from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    actor,
    fail,
    print_json,
    settings_from,
    verb_group,
    with_store,
)
from xmpp_clinic.clock import as_utc
from xmpp_clinic.records.attachments import AttachmentInfo
from xmpp_clinic.records.documentation import DocumentationError, DocumentedMessage
from xmpp_clinic.records.keys import RecordsKeyError
from xmpp_clinic.records.member import open_documentation
from xmpp_clinic.store import Store
from xmpp_clinic.threads.model import InvalidThread, check_name

GROUP_NAME = "records"
group = verb_group("The documentation member's copies of documented threads.")

READ_ACTION = "records.read"


def _moment(raw: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise typer.BadParameter(f"{raw!r} is not a date or time like 2026-11-30T08:00") from None


TimeOption = Annotated[
    datetime | None, typer.Option(parser=_moment, metavar="WHEN", help="ISO 8601 date/time (UTC).")
]


def _file_line(thread: str, file: AttachmentInfo) -> str:
    where = f"attachment {file.position} #{file.number} {file.name or '(unnamed)'}"
    if file.status == "stored":
        export = f"records attachment {thread} {file.position} --number {file.number}"
        facts = f"{file.media_type}, {file.size} bytes, sha256 {file.sha256}"
        return f"\t\t[{where}: {facts}; export: {export} --output FILE]"
    if file.status == "gap":
        return f"\t\t[{where}: not documented ({file.reason})]"
    return f"\t\t[{where}: not fetched yet]"


def _line(copy: DocumentedMessage) -> str:
    when = f"{as_utc(copy.at):%Y-%m-%dT%H:%M:%SZ}"
    if copy.kind == "gap":
        text = f"[not documented: {copy.gap_reason or 'no key'} for the documentation service]"
    else:
        text = copy.body.replace("\n", "\n\t\t")
    files = "".join("\n" + _file_line(copy.thread, f) for f in copy.attachments)
    return f"{when}\t{copy.sender}\t{text}{files}"


def _file_json(file: AttachmentInfo) -> dict[str, Any]:
    return {
        "number": file.number, "status": file.status, "name": file.name,
        "media_type": file.media_type, "size": file.size, "sha256": file.sha256,
        "reason": file.reason, "metadata_removed": file.metadata_removed,
    }  # fmt: skip


def _json(copy: DocumentedMessage) -> dict[str, Any]:
    return {
        "position": copy.position, "at": copy.at, "sender": copy.sender, "kind": copy.kind,
        "body": copy.body, "sce_content": copy.sce_content, "gap_reason": copy.gap_reason,
        "message_id": copy.message_id, "stanza_id": copy.stanza_id, "seq": copy.seq,
        "attachments": [_file_json(f) for f in copy.attachments],
    }  # fmt: skip


@group.command("show")
def show(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Thread name.")],
    since: TimeOption = None,
    until: TimeOption = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Print a documented thread's copies in order, with sender and time (audited)."""
    try:
        thread = check_name(name)
    except InvalidThread as exc:
        fail(str(exc), EXIT_USAGE)
    settings = settings_from(config)
    who = actor()

    async def read(store: Store) -> list[DocumentedMessage]:
        documentation = await open_documentation(store, settings.records.key_file)
        window = f"since {since:%Y-%m-%dT%H:%M:%SZ}" if since else ""
        window += f" until {until:%Y-%m-%dT%H:%M:%SZ}" if until else ""
        await AuditLog(store).record(AuditEvent(who, READ_ACTION, "show", thread, window.strip()))
        if documentation is None:
            return []
        return await documentation.read(thread, since=since, until=until)

    try:
        copies = with_store(settings, read)
    except RecordsKeyError as exc:
        fail(str(exc), EXIT_USAGE)
    except DocumentationError as exc:
        fail(str(exc))
    if json:
        print_json([_json(c) for c in copies])
        return
    for copy in copies:
        typer.echo(_line(copy))


@group.command("attachment")
def attachment(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Thread name.")],
    seq: Annotated[
        int, typer.Argument(metavar="SEQ", min=1, help="The message's position (records show).")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", metavar="FILE", help="New file to write (never overwritten)."
        ),
    ],
    number: Annotated[
        int, typer.Option("--number", min=1, metavar="N", help="Which attachment of the message.")
    ] = 1,
    config: ConfigOption = None,
) -> None:
    """Write one attachment of a documented message to a new file (audited)."""
    try:
        thread = check_name(name)
    except InvalidThread as exc:
        fail(str(exc), EXIT_USAGE)
    settings = settings_from(config)
    who = actor()

    async def read(store: Store) -> tuple[AttachmentInfo, bytes] | None:
        documentation = await open_documentation(store, settings.records.key_file)
        note = f"copy {seq} attachment {number} to {output}"
        await AuditLog(store).record(AuditEvent(who, READ_ACTION, "attachment", thread, note))
        if documentation is None:
            return None
        return await documentation.attachment(thread, seq, number)

    try:
        found = with_store(settings, read)
    except RecordsKeyError as exc:
        fail(str(exc), EXIT_USAGE)
    except DocumentationError as exc:
        fail(str(exc))
    if found is None:
        fail(f"{thread} has no attachment {number} at {seq}")
    info, content = found
    if info.status != "stored":
        why = info.reason or info.status
        fail(f"attachment {number} at {seq} of {thread} is not documented ({why})")
    try:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"{output} exists; name a new file", EXIT_USAGE)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    typer.echo(f"{output}\t{info.media_type}\t{info.size} bytes\tsha256 {info.sha256}")
