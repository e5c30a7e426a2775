"""Rules for part I, the messenger application (I.1 .. I.13)."""

from __future__ import annotations

from xmpp_clinic.report.controls import Assessment, Facts, Rule, ev, organisational, weakened
from xmpp_clinic.report.model import Status

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
    control = "hospital directory (persons, wards, roles) for import and membership"
    if f.settings.directory is None:
        return Assessment(
            control,
            PARTLY,
            "no [directory]: no directory to import; members are typed in by hand",
            (ev("directory", "not configured"),),
        )
    return Assessment(control, MET, "directory configured", (ev("directory", "configured"),))


def device_approval(f: Facts) -> Assessment:
    policy, devices = f.settings.policy, f.state.devices
    evidence = (
        ev("policy.device_approval", policy.device_approval),
        ev("policy.unapproved_recipient", policy.unapproved_recipient),
        ev("devices approved", devices.approved),
        ev("devices pending", devices.pending),
        ev("approved without a compared fingerprint", devices.approved_without_fingerprint),
    )
    control = "OMEMO device registry: each device bound to a person, approved before use"
    if policy.device_approval == "all":
        reason = "policy.device_approval = 'all': every device is approved without IT checking it"
        return Assessment(control, PARTLY, reason, evidence)
    if policy.device_approval == "first-device":
        reason = "policy.device_approval = 'first-device': a person's first device needs no IT"
        return Assessment(control, PARTLY, reason, evidence)
    if devices.approved_without_fingerprint:
        reason = f"{devices.approved_without_fingerprint} device(s) approved without a fingerprint"
        return Assessment(control, PARTLY, reason, evidence)
    return Assessment(control, MET, "manual approval by IT after fingerprint comparison", evidence)


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
    control = "HIS bridge: authenticated API, FHIR R4, HL7 v2"
    if not bridge.enabled:
        return Assessment(control, NOT_MET, "bridge.enabled = false: no HIS interface", evidence)
    if not tokens:
        return Assessment(control, PARTLY, "bridge enabled but no token issued", evidence)
    return Assessment(control, MET, "bridge enabled with scoped tokens", evidence)


def deletion(f: Facts) -> Assessment:
    retention, state = f.settings.retention, f.state
    evidence = (
        ev("retention.messages_days", retention.messages_days),
        ev("last purge", state.last_purge),
        ev("last deletion receipt", state.last_receipt),
        ev("server archive expiry", f.server.mam_expiry),
    )
    control = "retention policies, scheduled purge, deletion receipts"
    if state.last_purge in (None, "never"):
        why = "not available" if state.last_purge is None else "never run"
        return Assessment(control, PARTLY, f"retention configured; purge {why}", evidence)
    return Assessment(control, MET, "purge runs and leaves receipts", evidence)


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
    control = "encrypted backups to hospital-held OpenPGP keys, restore, verification"
    if not settings.recipients:
        return Assessment(control, NOT_MET, "backup.recipients is empty: no backup", evidence)
    verified = state.last_backup_verified or ""
    if verified.startswith("FAILED"):
        return Assessment(control, NOT_MET, "the newest backup does not verify", evidence)
    if not verified.startswith("verified"):
        why = "no backup found" if state.last_backup in (None, "never") else "not verified"
        return Assessment(control, PARTLY, why, evidence)
    return Assessment(control, MET, "backups encrypted and verified", evidence)


def redaction(_f: Facts) -> Assessment:
    return Assessment(
        "redaction of archived images, metadata stripped",
        NOT_MET,
        "not built in this version; images are archived as the client encrypted them",
    )


def evidence_report(f: Facts) -> Assessment:
    evidence = (ev("test run", f.tests.run_summary or "none given"),)
    control = "this report: evidence per requirement from live config and state"
    if not f.tests.run_summary:
        return Assessment(control, PARTLY, "no test results given (--test-results)", evidence)
    return Assessment(control, MET, "report with the results of a test run", evidence)


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
    control = "client software versions asked (XEP-0092, XEP-0115), outdated ones flagged"
    if not clients.check_versions:
        return Assessment(control, NOT_MET, "clients.check_versions = false", evidence)
    if not clients.minimum and not clients.os_minimum:
        return Assessment(control, PARTLY, "no minimum versions configured", evidence)
    if facts is not None and facts.outdated:
        reason = f"{len(facts.outdated)} outdated session(s); notified"
        if clients.outdated == "refuse":
            reason += " and refused"
        return Assessment(control, PARTLY, reason, evidence)
    return Assessment(control, MET, "no outdated client recorded", evidence)


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
