"""``xmpp-clinic erase --person JID``: a person's erasure request, with a receipt (I.7, II.3)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import typer

from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    actor,
    fail,
    person,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.cli.purge import receipt_book
from xmpp_clinic.retention.erasure import Eraser, Erasure
from xmpp_clinic.retention.server_mam import server_archive
from xmpp_clinic.store import Store


def erase(
    jid: Annotated[
        str, typer.Option("--person", parser=person, metavar="JID", help="The person's bare JID.")
    ],
    yes: Annotated[bool, typer.Option("--yes", help="Erase without asking.")] = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Remove a person's memberships, devices, directory entry, delivery records and
    server archive; pseudonymise what must stay.

    The signed receipt says what was deleted, what was pseudonymised, what the server
    could not purge, and what stays for legal reasons (I.7, II.3).
    """
    if not yes and not typer.confirm(f"Erase {jid} from this gateway?"):
        fail("not erased", EXIT_USAGE)
    settings = settings_from(config)

    def go(store: Store) -> Awaitable[Erasure]:
        eraser = Eraser(
            store, receipt_book(settings, store), batch=settings.retention.purge_batch,
            server=server_archive(settings.retention), component=settings.xmpp.component_jid,
        )  # fmt: skip
        return eraser.erase_person(jid, actor=actor())

    erasure = with_store(settings, go)
    if as_json:
        print_json(erasure.receipt.document())
        return
    typer.echo(f"erased {jid} (now {erasure.pseudonym}); receipt {erasure.receipt.id}")
    for item in erasure.receipt.body["items"]:
        if item.get("what") == "server-archive" and not item.get("done"):
            typer.echo(f"server {item['server']}: archive of {jid} NOT PURGED: {item['detail']}")
        for other in item.get("other_jids_removed_from_directory", []):
            typer.echo(f"directory: {other} belonged to the same person; erase it too")


def register(app: typer.Typer) -> None:
    app.command("erase")(erase)
