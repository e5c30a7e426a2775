"""``xmpp-clinic bridge``: serve the HIS bridge, manage its tokens, show the HL7 outbox (I.6)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Annotated

import typer

from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.documentation import open_copies
from xmpp_clinic.bridge.outbox import Outbox
from xmpp_clinic.bridge.records import NoDocumentation
from xmpp_clinic.bridge.service import BridgeService
from xmpp_clinic.bridge.tokens import SCOPES, TokenBook, TokenError
from xmpp_clinic.cli.common import (
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    actor,
    fail,
    print_json,
    run,
    settings_from,
    verb_group,
    with_store,
)
from xmpp_clinic.records.keys import RecordsKeyError
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadNotFound

GROUP_NAME = "bridge"
group = verb_group("HIS bridge: HTTP API and FHIR, HL7 v2 push, ADT (I.6).")
tokens = verb_group("Bearer tokens for the HIS.")
group.add_typer(tokens, name="token")


@group.command("serve")
def serve(config: ConfigOption = None) -> None:
    """Run the bridge alone (API, HL7 push, ADT listener as configured) until stopped."""
    settings = settings_from(config)
    bridge = settings.bridge
    if not (bridge.enabled or bridge.hl7.host or bridge.adt.listen):
        fail(
            "nothing to serve: set [bridge] enabled, [bridge.hl7] host or [bridge.adt] listen",
            EXIT_USAGE,
        )

    async def go() -> None:
        store = Store(settings.store.url)
        await store.migrate()
        try:
            copies = await open_copies(store, settings.records.key_file)
        except RecordsKeyError as exc:
            await store.close()
            fail(str(exc), EXIT_USAGE)
        service = BridgeService(bridge, store, copies)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        try:
            await service.start()
            if service.http is not None:
                typer.echo(f"bridge: API on {bridge.listen}")
            await stop.wait()
        finally:
            await service.stop()
            await store.close()

    try:
        run(go())
    except OSError as exc:
        fail(f"cannot listen: {exc.strerror or exc}")


@tokens.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who holds it, e.g. HIS.")],
    scope: Annotated[list[str], typer.Option("--scope", help=f"Repeatable: {', '.join(SCOPES)}.")],
    config: ConfigOption = None,
) -> None:
    """Create a token; it is printed once and only its hash is kept."""
    settings = settings_from(config)
    try:
        token = with_store(settings, lambda s: TokenBook(s).create(name, scope, actor=actor()))
    except TokenError as exc:
        fail(str(exc), EXIT_USAGE)
    typer.echo(token)
    typer.echo("(shown once: store it in the HIS now)", err=True)


@tokens.command("list")
def token_list(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Tokens: name, scopes, created, revoked (never the token)."""
    found = with_store(settings_from(config), lambda s: TokenBook(s).list())
    if as_json:
        print_json([t.as_json() for t in found])
        return
    for t in found:
        state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
        typer.echo(f"{t.name}\t{' '.join(t.scopes)}\t{t.created_at:%Y-%m-%d}\t{state}")


@tokens.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name.")], config: ConfigOption = None
) -> None:
    """Revoke a token: its next request is refused (401)."""
    try:
        with_store(settings_from(config), lambda s: TokenBook(s).revoke(name, actor=actor()))
    except TokenError as exc:
        fail(str(exc))
    typer.echo(f"revoked {name}")


@group.command("bind")
def bind(
    thread: Annotated[str, typer.Argument(help="The thread's name.")],
    visit: Annotated[str, typer.Argument(help="The case (visit number, PV1-19).")],
    config: ConfigOption = None,
) -> None:
    """Bind a thread to a case: its FHIR and MDM exports name that patient and visit."""
    try:
        with_store(settings_from(config), lambda s: CaseBook(s).bind(thread, visit, actor=actor()))
    except ThreadNotFound as exc:
        fail(str(exc))
    typer.echo(f"{thread} bound to case {visit}")


@group.command("outbox")
def outbox(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """MDM documents not yet accepted by the HIS, with attempts and the last answer."""
    settings = settings_from(config)
    found = with_store(
        settings, lambda s: Outbox(s, NoDocumentation(), settings.bridge.hl7).pending()
    )
    if as_json:
        print_json([p.as_json() for p in found])
        return
    if not found:
        typer.echo("outbox empty")
    for p in found:
        typer.echo(
            f"{p.control_id}\t{p.thread}\tMDM^{p.event} v{p.version}\t"
            f"attempts {p.attempts}\tnext {p.next_attempt_at:%Y-%m-%d %H:%M:%S}\t"
            f"{p.last_result or '-'}"
        )
