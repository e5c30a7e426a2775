"""From facts to findings: one rule per requirement, the weakened controls, the report.

A rule reads the :class:`Facts` of the live system and says which control serves the
requirement, its status with the reason, and the evidence (I.11). Rules live in
``rules_app`` (I.*) and ``rules_ops`` (II.* to IV.*); this module joins them with the
shipped catalogue so every ID appears exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from xmpp_clinic import __version__
from xmpp_clinic.clock import as_utc
from xmpp_clinic.config import Settings, weakened_controls
from xmpp_clinic.report.catalogue import load_catalogue
from xmpp_clinic.report.facts import ServerFacts, StateFacts, TestFacts
from xmpp_clinic.report.model import Evidence, Finding, Outcome, Report, Status
from xmpp_clinic.report.server_facts import source_kind


@dataclass(frozen=True)
class Facts:
    """Everything a rule may read."""

    settings: Settings
    state: StateFacts
    server: ServerFacts
    tests: TestFacts
    now: datetime


@dataclass(frozen=True)
class Assessment:
    """A rule's answer for one requirement."""

    control: str
    status: Status
    reason: str
    evidence: tuple[Evidence, ...] = ()
    owner: str = ""


Rule = Callable[[Facts], Assessment]

NOT_AVAILABLE = "not available"


def ev(label: str, value: object) -> Evidence:
    """One piece of evidence; ``None`` reads "not available"."""
    if value is None:
        shown = NOT_AVAILABLE
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        shown = ", ".join(str(v) for v in value) or "none"
    else:
        shown = str(value)
    return Evidence(label, shown)


Check = tuple[bool, Status, str]  # (does it hold?, the status then, the reason)


def judge(control: str, evidence: tuple[Evidence, ...], met: str, *checks: Check) -> Assessment:
    """The shape every technical rule has: the first check that holds decides the
    status and reason; when none holds the control is met for the reason ``met``."""
    for holds, status, reason in checks:
        if holds:
            return Assessment(control, status, reason, evidence)
    return Assessment(control, Status.MET, met, evidence)


def server_evidence(server: ServerFacts, *facts: str) -> tuple[Evidence, ...]:
    """Each server fact named, with the source it came from, and the live answers' age."""
    labels = {
        "confinement": ("confinement module loaded", server.confinement),
        "privilege": ("XEP-0356 privilege granted", server.privilege),
        "mam": ("server advertises MAM", server.server_archive),
        "upload": (
            "upload service",
            "none" if server.upload_service == "" else server.upload_service,
        ),
        "mam_expiry": ("server archive expiry", server.mam_expiry),
        "upload_expiry": ("server upload expiry", server.upload_expiry),
    }
    found: list[Evidence] = []
    for fact in facts:
        label, value = labels[fact]
        found.append(ev(label, value))
        found.append(ev(f"{label}: source", server.source_of(fact)))
    found.append(ev("server facts observed", server.observed or "never (by this gateway)"))
    return tuple(found)


def organisational(control: str, owner: str, *evidence: Evidence) -> Assessment:
    """A measure outside the gateway: say who must do what."""
    return Assessment(control, Status.ORGANISATIONAL, "outside the gateway", evidence, owner)


def weakened(facts: Facts) -> list[str]:
    """Controls weaker than production needs, for the top of the report (I.12)."""
    settings, server, state = facts.settings, facts.server, facts.state
    found = weakened_controls(settings)  # names the missing [directory] itself
    if server.confinement is None:
        found.append(
            "server confinement unknown (no fresh answer from the running gateway, no "
            "--server-config): let the gateway connect, or give --server-config"
        )
    elif not server.confinement:
        found.append(
            "mod_clinic_confine is not loaded: users can message each other around the gateway "
            f"({source_kind(server.source_of('confinement'))})"
        )
    if not settings.backup.recipients:
        found.append("backup.recipients is empty: no encrypted backups are made (I.9)")
    if not getattr(settings.retention, "enabled", True):
        found.append("retention is off: nothing is purged (I.7)")
    if not state.audit.intact or state.audit.broken_archives:
        found.append("the audit or archive hash chain is BROKEN (II.2)")
    if not settings.clients.check_versions:
        found.append("clients.check_versions = false: outdated clients are not noticed (I.13)")
    return found


def _tested(finding: Finding) -> Finding:
    """A control whose proving test failed in the given run is at most partly met."""
    failed = [t.test for t in finding.tests if t.outcome is Outcome.FAILED]
    if not failed or finding.status is not Status.MET:
        return finding
    return replace(
        finding, status=Status.PARTLY, reason=f"{finding.reason}; failed test: {failed[0]}"
    )


def assess(facts: Facts, rules: dict[str, Rule]) -> Report:
    """The report: one finding per catalogue ID, in catalogue order."""
    findings = []
    for item in load_catalogue():
        rule = rules.get(item.id)
        if rule is None:
            found = Assessment("none", Status.NOT_MET, "no control is built for it yet")
        else:
            found = rule(facts)
        finding = Finding(
            id=item.id,
            level=item.level,
            requirement=item.text,
            control=found.control,
            status=found.status,
            reason=found.reason,
            evidence=found.evidence,
            owner=found.owner,
            tests=facts.tests.proofs(item.id),
        )
        findings.append(_tested(finding))
    return Report(
        generated_at=as_utc(facts.now).isoformat(),
        gateway=facts.settings.xmpp.component_jid,
        version=__version__,
        weakened=tuple(weakened(facts)),
        findings=tuple(findings),
        test_run=facts.tests.run_summary,
    )
