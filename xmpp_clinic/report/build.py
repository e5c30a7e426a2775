"""Build a report from the live system: settings, store, server config, test results."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import Settings
from xmpp_clinic.report import rules_app, rules_ops
from xmpp_clinic.report.controls import Facts, Rule, assess
from xmpp_clinic.report.facts import ServerFacts
from xmpp_clinic.report.gather import gather_state
from xmpp_clinic.report.model import Report
from xmpp_clinic.report.server import read_server_config
from xmpp_clinic.report.server_facts import ServerFactsStore, merge_server_facts
from xmpp_clinic.report.tests import collect
from xmpp_clinic.store import Store

RULES: dict[str, Rule] = {**rules_app.RULES, **rules_ops.RULES}


@dataclass(frozen=True)
class Sources:
    """Where the evidence outside the store comes from (each optional)."""

    server_config: Path | None = None
    test_results: Path | None = None  # a JUnit XML file
    tests_root: Path | None = None  # the test sources, for their requirement markers

    @classmethod
    def from_settings(cls, settings: Settings, **given: Path | None) -> Sources:
        """The command line's paths, else ``[report]``'s."""
        server = given.get("server_config") or settings.report.server_config
        results = given.get("test_results") or settings.report.test_results
        return cls(server, results, given.get("tests_root"))


async def build_report(
    settings: Settings, store: Store, sources: Sources, now: datetime | None = None
) -> Report:
    """The report of this gateway now (I.11).

    Server facts: what the running gateway observed (fresh answers only), else the
    config file given (IV.2, I.3, IV.8).
    """
    when = now or utcnow()
    state = await gather_state(store, settings.clients, settings.backup)
    server = ServerFacts()
    if sources.server_config is not None:
        server = read_server_config(sources.server_config, settings.xmpp.component_jid)
    observed = await ServerFactsStore(store).read()
    server = merge_server_facts(server, observed, settings.xmpp.user_domains, when)
    tests = collect(sources.tests_root, sources.test_results)
    facts = Facts(settings, state, server, tests, when)
    return assess(facts, RULES)
