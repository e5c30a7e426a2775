"""Server facts: fresh live answers first, the config file next, else unknown (IV.2, I.3, IV.8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from xmpp_clinic.report.facts import ServerFacts
from xmpp_clinic.report.history import diff
from xmpp_clinic.report.server_facts import (
    CONFINEMENT,
    MAM,
    PRIVILEGE,
    UPLOAD,
    Observed,
    ServerFactsStore,
    live_fact,
    merge_server_facts,
)
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.privilege import Grant
from xmpp_clinic.xmpp.server_facts import DomainAnswers, facts_of, grant_text

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
H = "hospital.test"


def seen(fact: str, value: str, hours: float = 1, domain: str = H) -> Observed:
    return Observed(domain, fact, value, NOW - timedelta(hours=hours))


@pytest.mark.requirement("IV.2")
def test_a_fresh_answer_of_every_domain_decides_the_weakest_wins() -> None:
    rows = [seen(CONFINEMENT, "yes"), seen(CONFINEMENT, "no", domain="other.test")]
    assert live_fact(rows, CONFINEMENT, [H], NOW).value == "yes"
    both = live_fact(rows, CONFINEMENT, [H, "other.test"], NOW)
    assert both.value == "no" and both.source.startswith("live server, observed ")


@pytest.mark.requirement("IV.2")
@pytest.mark.parametrize(
    ("rows", "why"),
    [
        ([], "never observed"),
        ([seen(CONFINEMENT, "yes", hours=25)], "older than a day"),
        ([seen(CONFINEMENT, "unknown")], "did not answer"),
    ],
)
def test_old_missing_or_unanswered_is_unknown_never_met(rows: list[Observed], why: str) -> None:
    found = live_fact(rows, CONFINEMENT, [H], NOW)
    assert found.value is None and why in found.source
    merged = merge_server_facts(ServerFacts(), rows, [H], NOW)
    assert merged.confinement is None
    assert merged.source_of(CONFINEMENT).startswith("unknown: ")


@pytest.mark.requirement("IV.2", "I.3")
def test_live_answers_win_and_the_config_file_fills_what_is_unknown() -> None:
    config = ServerFacts(source="/etc/prosody/prosody.cfg.lua", confinement=False, privilege=True)
    rows = [seen(CONFINEMENT, "yes"), seen(PRIVILEGE, "roster=both", hours=30)]
    merged = merge_server_facts(config, rows, [H], NOW)
    assert merged.confinement is True
    assert merged.source_of(CONFINEMENT).startswith("live server")
    assert merged.privilege is True  # the live answer is too old: the config file says it
    assert merged.source_of(PRIVILEGE).startswith("config file /etc/prosody/prosody.cfg.lua")
    assert "older than a day" in merged.source_of(PRIVILEGE)
    assert merged.observed is not None and "(1 h ago)" in merged.observed
    assert "not observable from the live server" in merged.source_of("mam_expiry")


@pytest.mark.requirement("I.3")
def test_privilege_none_advertised_is_not_granted() -> None:
    merged = merge_server_facts(ServerFacts(), [seen(PRIVILEGE, "none")], [H], NOW)
    assert merged.privilege is False and merged.grant == "none"


@pytest.mark.requirement("IV.2", "I.3", "IV.8")
def test_what_the_gateway_stores_from_a_servers_answers() -> None:
    features = frozenset({"urn:xmpp-clinic:confine:0", "urn:xmpp:mam:2"})
    grant = Grant(H, "urn:xmpp:privilege:2", roster="both", message="outgoing")
    stored = facts_of(DomainAnswers(H, features, "upload.hospital.test"), grant)
    assert stored == {
        CONFINEMENT: "yes",
        MAM: "yes",
        UPLOAD: "upload.hospital.test",
        PRIVILEGE: "roster=both message=outgoing",
    }
    silent = facts_of(DomainAnswers(H, None, None), None)
    assert silent == {CONFINEMENT: "unknown", MAM: "unknown", UPLOAD: "unknown", PRIVILEGE: "none"}
    assert grant_text(Grant(H, "urn:xmpp:privilege:1")) == "none"


@pytest.mark.requirement("IV.2")
async def test_the_store_keeps_the_newest_answer_per_domain_and_fact(tmp_path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'facts.db'}")
    await store.migrate()
    try:
        facts = ServerFactsStore(store)
        await facts.record("Hospital.Test", {CONFINEMENT: "no"}, NOW - timedelta(hours=2))
        await facts.record(H, {CONFINEMENT: "yes", MAM: "yes"}, NOW)
        rows = await facts.read()
    finally:
        await store.close()
    assert sorted((r.domain, r.fact, r.value, r.observed_at) for r in rows) == [
        (H, CONFINEMENT, "yes", NOW),
        (H, MAM, "yes", NOW),
    ]


@pytest.mark.requirement("IV.4", "IV.2")
async def test_a_live_fact_feeds_the_report_and_its_age_alone_is_no_change(
    tmp_path: Path,
) -> None:
    from tests.unit.harness import make_settings, migrated_store
    from xmpp_clinic.report.build import Sources, build_report

    store = await migrated_store(tmp_path / "clinic.db")
    try:
        settings = make_settings(tmp_path)
        domains = settings.xmpp.user_domains
        for domain in domains:
            await ServerFactsStore(store).record(domain, {CONFINEMENT: "yes"}, NOW)
        first = await build_report(settings, store, Sources(), now=NOW + timedelta(hours=1))
        later = await build_report(settings, store, Sources(), now=NOW + timedelta(hours=5))
        stale = await build_report(settings, store, Sources(), now=NOW + timedelta(hours=25))
    finally:
        await store.close()
    assert first.finding("IV.2").status.value == "met"
    assert "(live server)" in first.finding("IV.2").reason
    assert diff(first, later) == []
    assert stale.finding("IV.2").status.value == "partly"
    assert any("confinement unknown" in w for w in stale.weakened)
    assert [c.id for c in diff(later, stale)].count("IV.2") >= 1
