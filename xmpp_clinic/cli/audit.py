"""``xmpp-clinic audit``: verify the hash-chained audit log and list its events (II.2, IV.4)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from xmpp_clinic.archive.audit import AuditLog, ChainReport, RecordedEvent
from xmpp_clinic.archive.messages import MessageArchive
from xmpp_clinic.cli.common import (
    EXIT_FAILURE,
    EXIT_USAGE,
    ConfigOption,
    JsonOption,
    fail,
    print_json,
    settings_from,
    verb_group,
    with_store,
)
from xmpp_clinic.config import Settings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

GROUP_NAME = "audit"
group = verb_group("Audit log: verify the chain, list events.")

T = TypeVar("T")


def with_log(settings: Settings, action: Callable[[AuditLog], Awaitable[T]]) -> T:
    return with_store(settings, lambda store: action(AuditLog(store)))


async def _broken_threads(store: Store) -> list[tuple[str, int]]:
    """Threads whose message archive chain is broken, with the first broken seq (II.2)."""
    archive = MessageArchive(store)
    broken: list[tuple[str, int]] = []
    for thread in await ThreadService(store, user_domains=[]).list():
        seq = await archive.verify(thread.id)
        if seq is not None:
            broken.append((thread.name, seq))
    return broken


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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(event: RecordedEvent) -> str:
    """One line per event of any kind (device, thread, membership, ...): who, what, when,
    why, to what; the log holds no content to show (IV.4)."""
    note = f" ({_one_line(event.note)})" if event.note else ""
    return (
        f"{event.seq} {event.at:%Y-%m-%d %H:%M:%S} {_one_line(event.actor)} {event.action} "
        f"[{event.reason}] {_one_line(event.subject)}{note}"
    )


@group.command("verify")
def verify(
    expect_head: Annotated[
        str | None,
        typer.Option(
            "--expect-head",
            metavar="SEQ:HASH",
            help="SEQ:HASH recorded from an earlier run; fails if the chain was rewritten.",
        ),
    ] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Exit 0 when the audit chain and every thread's message archive chain are intact;
    exit 1 and name the first broken entry otherwise (II.2)."""
    settings = settings_from(config)
    anchor = _parse_anchor(expect_head) if expect_head else None

    async def check(store: Store) -> tuple[ChainReport, str | None, list[tuple[str, int]]]:
        log = AuditLog(store)
        report = await log.verify()
        problem = await _check_anchor(log, *anchor) if anchor else None
        return report, problem, await _broken_threads(store)

    report, anchor_problem, broken_threads = with_store(settings, check)
    intact = report.intact and anchor_problem is None
    if as_json:
        data = {
            "intact": intact and not broken_threads,
            "count": report.count,
            "head": f"{report.head_seq}:{report.head_hash}",
            "broken_seq": report.broken_seq,
            "problem": report.problem or anchor_problem,
            "broken": report.broken.as_json() if report.broken else None,
            "broken_archives": [{"thread": name, "seq": seq} for name, seq in broken_threads],
        }
        print_json(data)
    else:
        if intact:
            typer.echo(
                f"audit log intact: {report.count} events, "
                f"head {report.head_seq}:{report.head_hash}"
            )
        else:
            typer.echo(
                f"audit log BROKEN at event {report.broken_seq}: {report.problem or anchor_problem}"
            )
            if report.broken is not None:
                typer.echo(f"first broken entry: {_describe(report.broken)}")
        for name, seq in broken_threads:
            typer.echo(f"message archive of thread {name} BROKEN at message {seq}")
        if not broken_threads:
            typer.echo("message archives intact")
    if not intact or broken_threads:
        raise typer.Exit(EXIT_FAILURE)


@group.command("events")
def list_events(
    subject: Annotated[
        str | None, typer.Option("--subject", metavar="SUBJECT", help="Only this subject.")
    ] = None,
    after: Annotated[
        int, typer.Option("--after", min=0, metavar="SEQ", help="Only events after SEQ.")
    ] = 0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, metavar="N", help="At most N.")
    ] = None,
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
