"""Rules for part I, the messenger application (I.1 .. I.13)."""

from __future__ import annotations

from xmpp_clinic.report.controls import (
    Assessment,
    Facts,
    Rule,
    ev,
    judge,
    organisational,
    server_evidence,
    weakened,
)
from xmpp_clinic.report.model import Status
from xmpp_clinic.report.server_facts import source_kind

EXAMPLE_DOMAIN = "hospital.example"
MET, PARTLY, NOT_MET = Status.MET, Status.PARTLY, Status.NOT_MET


def privacy_notice(f: Facts) -> Assessment:
    privacy = f.settings.privacy
    evidence = (
        ev("privacy.notice_url", privacy.notice_url),
        ev("privacy.controller_contact", privacy.controller_contact),
    )
    control = "privacy notice link in every thread's disco#info (XEP-0128)"
    if EXAMPLE_DOMAIN in privacy.notice_url or EXAMPLE_DOMAIN in privacy.controller_contact:
        reason = "the notice or contact is still the example default; set the hospital's own"
        return Assessment(control, PARTLY, reason, evidence)
    return Assessment(control, MET, "the hospital's notice is configured", evidence)


def app_lock(_f: Facts) -> Assessment:
    return organisational(
        "app lock (PIN, biometrics) on the device",
        "hospital IT: enforce an app lock for the messenger in every device's MDM profile",
    )


def directory(f: Facts) -> Assessment:
    """The directory, and the XEP-0356 privilege its roster push needs (I.3)."""
    server, configured = f.server, f.settings.directory is not None
    evidence = (
        ev("directory", "configured" if configured else "not configured"),
        *server_evidence(server, "privilege"),
    )
    source = source_kind(server.source_of("privilege"))
    return judge(
        "hospital directory (persons, wards, roles) for import, membership and roster push",
        evidence,
        f"directory configured; the server grants the gateway privilege ({source})",
        (
            not configured,
            PARTLY,
            "no [directory]: no directory to import; members are typed in by hand",
        ),
        (
            server.privilege is None,
            PARTLY,
            f"directory configured; XEP-0356 privilege for roster push unknown ({source})",
        ),
        (
            server.privilege is False,
            PARTLY,
            f"directory configured, but the server grants no XEP-0356 privilege: "
            f"no roster push ({source})",
        ),
    )


def device_approval(f: Facts) -> Assessment:
    policy, devices = f.settings.policy, f.state.devices
    evidence = (
        ev("policy.device_approval", policy.device_approval),
        ev("policy.unapproved_recipient", policy.unapproved_recipient),
        ev("devices approved", devices.approved),
        ev("devices pending", devices.pending),
        ev("approved without a compared fingerprint", devices.approved_without_fingerprint),
    )
    return judge(
        "OMEMO device registry: each device bound to a person, approved before use",
        evidence,
        "manual approval by IT after fingerprint comparison",
        (
            policy.device_approval == "all",
            PARTLY,
            "policy.device_approval = 'all': every device is approved without IT checking it",
        ),
        (
            policy.device_approval == "first-device",
            PARTLY,
            "policy.device_approval = 'first-device': a person's first device needs no IT",
        ),
        (
            devices.approved_without_fingerprint > 0,
            PARTLY,
            f"{devices.approved_without_fingerprint} device(s) approved without a fingerprint",
        ),
    )


def key_management(f: Facts) -> Assessment:
    policy, devices = f.settings.policy, f.state.devices
    evidence = (
        ev("policy.default_valid_days", policy.default_valid_days),
        ev("devices expired", devices.expired),
        ev("devices revoked", devices.revoked),
    )
    control = "approval with expiry and re-validation; revocation on the next message"
    if policy.device_approval == "all":
        return Assessment(
            control, PARTLY, "devices are approved automatically, not bound by IT", evidence
        )
    return Assessment(
        control, MET, f"approvals expire after {policy.default_valid_days} days", evidence
    )


def his_bridge(f: Facts) -> Assessment:
    bridge, tokens = f.settings.bridge, f.state.bridge_tokens
    evidence = (ev("bridge.enabled", bridge.enabled), ev("bridge tokens", tokens))
    return judge(
        "HIS bridge: authenticated API, FHIR R4, HL7 v2",
        evidence,
        "bridge enabled with scoped tokens",
        (not bridge.enabled, NOT_MET, "bridge.enabled = false: no HIS interface"),
        (not tokens, PARTLY, "bridge enabled but no token issued"),
    )


def deletion(f: Facts) -> Assessment:
    retention, state = f.settings.retention, f.state
    evidence = (
        ev("retention.messages_days", retention.messages_days),
        ev("last purge", state.last_purge),
        ev("last deletion receipt", state.last_receipt),
        *server_evidence(f.server, "mam_expiry", "mam"),
    )
    why = "not available" if state.last_purge is None else "never run"
    return judge(
        "retention policies, scheduled purge, deletion receipts",
        evidence,
        "purge runs and leaves receipts",
        (state.last_purge in (None, "never"), PARTLY, f"retention configured; purge {why}"),
    )


def no_telemetry(_f: Facts) -> Assessment:
    return Assessment(
        "no telemetry, no third-party calls",
        MET,
        "the gateway contains no crash or analytics reporting; it talks to the XMPP "
        "server and the configured HIS endpoints only",
        (ev("third-party services", "none"),),
    )


def backup(f: Facts) -> Assessment:
    settings, state = f.settings.backup, f.state
    evidence = (
        ev("backup.recipients", list(settings.recipients)),
        ev("backup.directory", settings.directory),
        ev("last backup", state.last_backup),
        ev("last backup verified", state.last_backup_verified),
    )
    verified = state.last_backup_verified or ""
    return judge(
        "encrypted backups to hospital-held OpenPGP keys, restore, verification",
        evidence,
        "backups encrypted and verified",
        (not settings.recipients, NOT_MET, "backup.recipients is empty: no backup"),
        (verified.startswith("FAILED"), NOT_MET, "the newest backup does not verify"),
        (
            not verified.startswith("verified"),
            PARTLY,
            "no backup found" if state.last_backup in (None, "never") else "not verified",
        ),
    )


def redaction(_f: Facts) -> Assessment:
    return Assessment(
        "redaction of archived images, metadata stripped",
        NOT_MET,
        "not built in this version; images are archived as the client encrypted them",
    )


def evidence_report(f: Facts) -> Assessment:
    evidence = (ev("test run", f.tests.run_summary or "none given"),)
    return judge(
        "this report: evidence per requirement from live config and state",
        evidence,
        "report with the results of a test run",
        (not f.tests.run_summary, PARTLY, "no test results given (--test-results)"),
    )


def by_default(f: Facts) -> Assessment:
    found = weakened(f)
    control = "strictest defaults: E2E required, manual approval, no telemetry, fail closed"
    if found:
        return Assessment(
            control, PARTLY, f"{len(found)} weakened control(s), listed at the top", ()
        )
    return Assessment(control, MET, "no default weakened", ())


def client_versions(f: Facts) -> Assessment:
    clients, facts = f.settings.clients, f.state.clients
    evidence = (
        ev("clients.minimum", [f"{k} >= {v}" for k, v in clients.minimum.items()]),
        ev("clients.os_minimum", [f"{k} >= {v}" for k, v in clients.os_minimum.items()]),
        ev("clients.outdated", clients.outdated),
        ev("sessions recorded", facts.sessions if facts else None),
        ev("outdated sessions", list(facts.outdated) if facts else None),
    )
    outdated = facts.outdated if facts is not None else ()
    refused = " and refused" if clients.outdated == "refuse" else ""
    return judge(
        "client software versions asked (XEP-0092, XEP-0115), outdated ones flagged",
        evidence,
        "no outdated client recorded",
        (not clients.check_versions, NOT_MET, "clients.check_versions = false"),
        (
            not clients.minimum and not clients.os_minimum,
            PARTLY,
            "no minimum versions configured",
        ),
        (bool(outdated), PARTLY, f"{len(outdated)} outdated session(s); notified{refused}"),
    )


RULES: dict[str, Rule] = {
    "I.1": privacy_notice,
    "I.2": app_lock,
    "I.3": directory,
    "I.4": device_approval,
    "I.5": key_management,
    "I.6": his_bridge,
    "I.7": deletion,
    "I.8": no_telemetry,
    "I.9": backup,
    "I.10": redaction,
    "I.11": evidence_report,
    "I.12": by_default,
    "I.13": client_versions,
}
