"""``threads delivery NAME [--since ...] [--json]``: who has each message of a thread (II.2).

For IT: per message and member, delivered live / fetched by MAM / read / not yet, from
the gateway's delivery records (no content). Added to the ``threads`` group of
:mod:`xmpp_clinic.cli.threads` through the module, as ``threads_retention`` does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import typer

from xmpp_clinic.cli import threads as threads_cli
from xmpp_clinic.cli.common import (
    ConfigOption,
    JsonOption,
    fail,
    print_json,
    settings_from,
    with_store,
)
from xmpp_clinic.cli.threads import NameArg
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.completeness.delivery import Delivery
from xmpp_clinic.completeness.delivery_store import Deliveries
from xmpp_clinic.retention.policy import InvalidPeriod, parse_period
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadNotFound, ThreadService


def _since(raw: str) -> str:
    try:
        since_of(raw, utcnow())
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return raw


def since_of(raw: str, now: datetime) -> datetime:
    """``24h`` / ``7d`` / ``90m`` back from ``now``, or an ISO 8601 time (UTC if naive)."""
    try:
        return now - timedelta(minutes=parse_period(raw))
    except InvalidPeriod:
        pass
    try:
        return as_utc(datetime.fromisoformat(raw))
    except ValueError:
        raise ValueError(f"{raw!r} is neither a period (24h, 7d) nor an ISO 8601 time") from None


def _json(row: Delivery) -> dict[str, Any]:
    return {
        "seq": row.seq, "stanza_id": row.stanza_id, "sender": row.sender,
        "member": row.member, "at": row.at, "status": str(row.status),
        "delivered_at": row.delivered_at, "fetched_at": row.fetched_at,
        "read_at": row.read_at, "notified_at": row.notified_at,
    }  # fmt: skip


@threads_cli.group.command("delivery")
def delivery(
    name: NameArg,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", parser=_since, metavar="WHEN", help="24h, 7d, or an ISO 8601 time."
        ),
    ] = None,
    json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Per message and member: delivered, fetched (MAM), read or not yet (II.2)."""
    settings = settings_from(config)
    start = since_of(since, utcnow()) if since else None

    async def rows(store: Store) -> list[Delivery]:
        await ThreadService(store, user_domains=settings.xmpp.user_domains).get(name)
        return await Deliveries(store).in_thread(name, start)

    try:
        found = with_store(settings, rows)
    except ThreadNotFound as exc:
        fail(str(exc))
    if json:
        print_json([_json(r) for r in found])
        return
    for r in found:
        when = r.since
        shown = f"{when:%Y-%m-%d %H:%M:%S}" if when is not None else "-"
        typer.echo(f"{r.seq}\t{r.stanza_id}\t{r.sender}\t{r.member}\t{r.status}\t{shown}")
