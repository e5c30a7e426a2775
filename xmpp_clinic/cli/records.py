"""``xmpp-clinic records show``: read a documented thread's copies, audited (I.6, IV.4).

For hospital IT: what the documentation member stored for a thread, decrypted with the
``[records] key_file`` key, in order, with sender and time; gaps (messages that carried
no key for the documentation service) are shown as such. Every read is an audit event
naming who read which thread and which window.
"""

from __future__ import annotations

from datetime import datetime
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


def _line(copy: DocumentedMessage) -> str:
    when = f"{as_utc(copy.at):%Y-%m-%dT%H:%M:%SZ}"
    if copy.kind == "gap":
        text = f"[not documented: {copy.gap_reason or 'no key'} for the documentation service]"
    else:
        text = copy.body.replace("\n", "\n\t\t")
    return f"{when}\t{copy.sender}\t{text}"


def _json(copy: DocumentedMessage) -> dict[str, Any]:
    return {
        "position": copy.position, "at": copy.at, "sender": copy.sender, "kind": copy.kind,
        "body": copy.body, "sce_content": copy.sce_content, "gap_reason": copy.gap_reason,
        "message_id": copy.message_id, "stanza_id": copy.stanza_id, "seq": copy.seq,
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
