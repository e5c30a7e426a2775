"""Server facts the running gateway observed, kept in the store and judged by age (IV.2, I.3, IV.8).

At every connect the gateway asks each user domain's server (``xmpp.server_facts``):
is the confinement module loaded (its disco#info feature), does it advertise MAM, does
it list an upload service, did it grant XEP-0356 privileges. The answers are stored
here with the time observed. The report trusts an answer only while it is fresh
(:data:`MAX_AGE`): an old or missing one is "unknown", never "met"; then the server's
config file, where given, is the next source. Every fact says which source it came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select

from xmpp_clinic.clock import as_utc, iso, utcnow
from xmpp_clinic.report.facts import ServerFacts
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.server_facts import ServerFact

MAX_AGE = timedelta(days=1)
YES, NO, UNKNOWN = "yes", "no", "unknown"
# Fact names, as stored. Values: yes / no / unknown, or a JID / grant text.
CONFINEMENT = "confinement"
PRIVILEGE = "privilege"  # "none", or the grant: "roster=both message=outgoing ..."
MAM = "mam"
UPLOAD = "upload"  # the upload service's JID, "" for none
FACTS = (CONFINEMENT, PRIVILEGE, MAM, UPLOAD)
LIVE = "live server"
CONFIG = "config file"


def source_kind(source: str) -> str:
    """ "live server", "config file" or "unknown": for a reason that stays the same
    from one report to the next (``report diff`` compares reasons)."""
    for kind in (LIVE, CONFIG):
        if source.startswith(kind):
            return kind
    return "unknown"


@dataclass(frozen=True)
class Observed:
    """One stored answer of one domain's server."""

    domain: str
    fact: str
    value: str
    observed_at: datetime


class ServerFactsStore:
    """The ``server_facts`` table: the newest answer per domain and fact."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def record(
        self, domain: str, values: Mapping[str, str], at: datetime | None = None
    ) -> None:
        """Replace ``domain``'s answers for the facts in ``values``, observed ``at``."""
        when = as_utc(at or utcnow())
        async with self._store.session() as session:
            for fact, value in values.items():
                await session.merge(
                    ServerFact(
                        domain=domain.lower(), fact=fact, value=value[:500], observed_at=when
                    )
                )

    async def read(self) -> list[Observed]:
        async with self._store.session() as session:
            rows = (await session.execute(select(ServerFact))).scalars().all()
        return [Observed(r.domain, r.fact, r.value, as_utc(r.observed_at)) for r in rows]


def _when(at: datetime) -> str:
    return iso(as_utc(at).replace(microsecond=0)) or ""


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    if hours >= 48:
        return f"{hours // 24} days"
    if hours >= 1:
        return f"{hours} h"
    return f"{max(int(delta.total_seconds() // 60), 0)} min"


@dataclass(frozen=True)
class LiveFact:
    """One fact over all user domains: its value (None: unknown) and where it came from."""

    value: str | None
    source: str
    observed_at: datetime | None = None  # the oldest answer it rests on


def live_fact(
    observed: Iterable[Observed], fact: str, domains: Sequence[str], now: datetime
) -> LiveFact:
    """The fact for every user domain, if each has a fresh, definite answer.

    Several domains combine to the weakest: confinement is "yes" only if every domain
    said "yes". A domain never asked, asked more than :data:`MAX_AGE` ago, or whose
    server did not answer makes the whole fact unknown.
    """
    wanted = [d.lower() for d in domains]
    if not wanted:
        return LiveFact(None, "no user domains configured")
    found = {o.domain: o for o in observed if o.fact == fact}
    values: list[str] = []
    oldest: Observed | None = None
    for domain in wanted:
        item = found.get(domain)
        if item is None:
            return LiveFact(None, f"never observed on {domain}")
        age = as_utc(now) - item.observed_at
        if age > MAX_AGE:
            return LiveFact(
                None, f"observed on {domain} {_age(age)} ago, older than a day: unknown"
            )
        if item.value == UNKNOWN:
            return LiveFact(None, f"{domain}'s server did not answer at {_when(item.observed_at)}")
        values.append(item.value)
        if oldest is None or item.observed_at < oldest.observed_at:
            oldest = item
    assert oldest is not None
    source, at = f"{LIVE}, observed {_when(oldest.observed_at)}", oldest.observed_at
    if fact in (CONFINEMENT, MAM):
        return LiveFact(YES if all(v == YES for v in values) else NO, source, at)
    if fact == PRIVILEGE:
        return LiveFact("none" if "none" in values else "; ".join(values), source, at)
    return LiveFact(", ".join(v for v in values if v), source, at)


def _yes(value: str | None) -> bool | None:
    return None if value is None else value == YES


def merge_server_facts(
    config: ServerFacts, observed: Iterable[Observed], domains: Sequence[str], now: datetime
) -> ServerFacts:
    """Fresh live answers first, the config file's where a live one is unknown.

    ``sources`` names, per fact, whether the live server or the config file said it,
    or why it is unknown.
    """
    rows = list(observed)
    config_source = f"{CONFIG} {config.source}" if config.source else ""
    sources: dict[str, str] = {}
    used: list[datetime] = []

    def pick(fact: str, from_config: bool | None) -> bool | None:
        live = live_fact(rows, fact, domains, now)
        if fact == PRIVILEGE:
            value = None if live.value is None else live.value != "none"
        else:
            value = _yes(live.value)
        if value is not None:
            sources[fact] = live.source
            if live.observed_at is not None:
                used.append(live.observed_at)
            return value
        if from_config is not None:
            sources[fact] = f"{config_source} (live: {live.source})"
            return from_config
        sources[fact] = f"unknown: {live.source}" + ("" if config.source else "; no config file")
        return None

    confinement = pick(CONFINEMENT, config.confinement)
    privilege = pick(PRIVILEGE, config.privilege)
    mam = live_fact(rows, MAM, domains, now)
    upload = live_fact(rows, UPLOAD, domains, now)
    grant = live_fact(rows, PRIVILEGE, domains, now)
    sources[MAM] = mam.source
    sources[UPLOAD] = upload.source
    for name, value in (("mam_expiry", config.mam_expiry), ("upload_expiry", config.upload_expiry)):
        if value is not None:
            sources[name] = config_source
        else:
            sources[name] = "not observable from the live server; " + (
                config_source or "no config file"
            )
    observed_age = None
    if used:
        oldest = min(used)
        observed_age = f"{_when(oldest)} ({_age(as_utc(now) - oldest)} ago)"
    return replace(
        config,
        observed=observed_age,
        confinement=confinement,
        privilege=privilege,
        server_archive=_yes(mam.value),
        upload_service=upload.value,
        grant=grant.value,
        sources=sources,
    )
