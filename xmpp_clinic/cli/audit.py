"""``xmpp-clinic audit``: verify the hash-chained audit log and list its events (II.2, IV.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from xmpp_clinic.archive.audit import AuditLog, ChainReport, RecordedEvent
from xmpp_clinic.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    fail,
    print_json,
    run,
    settings_from,
)
from xmpp_clinic.config import Settings
from xmpp_clinic.store import Store

GROUP_NAME = "audit"
group = typer.Typer(help="Audit log: verify the chain, list events.", no_args_is_help=True)

T = TypeVar("T")


def with_log(settings: Settings, action: Callable[[AuditLog], Awaitable[T]]) -> T:
    async def go() -> T:
        store = Store(settings.store.url)
        try:
            await store.migrate()
            return await action(AuditLog(store))
        finally:
            await store.close()

    return run(go())


def _parse_anchor(value: str) -> tuple[int, str]:
    seq, _, digest = value.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        fail("--expect-head takes SEQ:HASH as printed by 'audit verify'", EXIT_USAGE)
    return int(seq), digest.lower()


async def _check_anchor(log: AuditLog, seq: int, digest: str) -> str | None:
    found = await log.events(after=seq - 1, limit=1)
    if not found or found[0].seq != seq:
        return f"event {seq} of the recorded head is gone"
    if found[0].hash.hex() != digest:
        return f"event {seq} no longer has the recorded hash: the chain was rewritten"
    return None


def _describe(event: RecordedEvent) -> str:
    return (
        f"{event.seq} {event.at:%Y-%m-%d %H:%M:%S} {event.actor} {event.action} "
        f"[{event.reason}] {event.subject}" + (f" ({event.note})" if event.note else "")
    )


@group.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            help="SEQ:HASH recorded from an earlier run; fails if the chain was rewritten.",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Exit 0 when the chain is intact; exit 1 and name the first broken event otherwise."""
    settings = settings_from(config)
    anchor = _parse_anchor(expect_head) if expect_head else None

    async def check(log: AuditLog) -> tuple[ChainReport, str | None]:
        report = await log.verify()
        problem = await _check_anchor(log, *anchor) if anchor else None
        return report, problem

    report, anchor_problem = with_log(settings, check)
    if as_json:
        data = {
            "intact": report.intact and anchor_problem is None,
            "count": report.count,
            "head": f"{report.head_seq}:{report.head_hash}",
            "broken_seq": report.broken_seq,
            "problem": report.problem or anchor_problem,
            "broken": report.broken.as_json() if report.broken else None,
        }
        print_json(data)
    elif report.intact and anchor_problem is None:
        typer.echo(
            f"audit log intact: {report.count} events, head {report.head_seq}:{report.head_hash}"
        )
    else:
        typer.echo(
            f"audit log BROKEN at event {report.broken_seq}: {report.problem or anchor_problem}"
        )
        if report.broken is not None:
            typer.echo(f"first broken entry: {_describe(report.broken)}")
    if not report.intact or anchor_problem is not None:
        raise typer.Exit(EXIT_FAILURE)


@group.command("events")
def list_events(
    subject: Annotated[str | None, typer.Option("--subject", help="Only this subject.")] = None,
    after: Annotated[int, typer.Option("--after", min=0, help="Only events after SEQ.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """List audit events in chain order (who, what, when, reason; never content)."""
    settings = settings_from(config)
    found = with_log(settings, lambda log: log.events(after=after, limit=limit, subject=subject))
    if as_json:
        print_json([event.as_json() for event in found])
        return
    for event in found:
        typer.echo(_describe(event))
    if not found:
        typer.echo("no events")
