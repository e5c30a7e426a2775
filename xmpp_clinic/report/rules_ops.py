"""Rules for parts II to IV: communication, end devices, platform and operation."""

from __future__ import annotations

from xmpp_clinic.report.controls import (
    Assessment,
    Facts,
    Rule,
    ev,
    judge,
    organisational,
    server_evidence,
)
from xmpp_clinic.report.model import Status
from xmpp_clinic.report.rules_app import client_versions
from xmpp_clinic.report.server_facts import source_kind

MET, PARTLY, NOT_MET = Status.MET, Status.PARTLY, Status.NOT_MET


def e2e(f: Facts) -> Assessment:
    """E2E in the threads; a server known not to confine lets plaintext go around (II.1).

    Unknown confinement is flagged at the top and under IV.2; the gateway's own control
    stays met here.
    """
    policy, server = f.settings.policy, f.server
    evidence = (
        ev("policy.require_e2e", policy.require_e2e),
        ev("policy.unapproved_recipient", policy.unapproved_recipient),
        ev("care threads", f.state.threads),
        *server_evidence(server, "confinement"),
    )
    source = source_kind(server.source_of("confinement"))
    return judge(
        "OMEMO required in every care thread; plaintext refused; approved readers only",
        evidence,
        "plaintext refused, keys of unapproved devices removed",
        (not policy.require_e2e, NOT_MET, "policy.require_e2e = false"),
        (
            server.confinement is False,
            PARTLY,
            "threads refuse plaintext, but the server does not confine users: direct "
            f"messages around the gateway are not forced to be encrypted ({source})",
        ),
    )


def integrity(f: Facts) -> Assessment:
    audit = f.state.audit
    evidence = (
        ev("audit chain", "intact" if audit.intact else f"BROKEN: {audit.problem}"),
        ev("audit events", audit.events),
        ev("audit head", audit.head),
        ev("broken message archives", list(audit.broken_archives)),
    )
    return judge(
        "hash-chained audit log and message archive, verified now",
        evidence,
        "every chain verified intact now",
        (not audit.intact or bool(audit.broken_archives), NOT_MET, "a hash chain is broken"),
    )


def metadata(f: Facts) -> Assessment:
    retention = f.settings.retention
    evidence = (
        ev("retention.audit_metadata_days", retention.audit_metadata_days),
        ev("IP addresses stored", "never"),
    )
    return Assessment(
        "connection and audit metadata kept for a set period; no IPs; no secondary use",
        MET,
        f"audit metadata kept {retention.audit_metadata_days} days",
        evidence,
    )


def open_protocols(_f: Facts) -> Assessment:
    return Assessment(
        "standard XMPP only (MUC, MAM, OMEMO, ad-hoc commands)",
        MET,
        "stock clients join care threads as ordinary rooms",
        (ev("protocols", "XEP-0045, XEP-0313, XEP-0384, XEP-0050"),),
    )


def device_protection(_f: Facts) -> Assessment:
    return organisational(
        "device lock and storage encryption",
        "hospital IT: enforce screen lock and storage encryption in the MDM profile",
    )


def mdm(f: Facts) -> Assessment:
    devices = f.state.devices
    evidence = (
        ev("approved devices", devices.approved),
        ev("approved without an MDM asset id", devices.approved_without_asset),
    )
    return judge(
        "device registry linked to MDM asset ids; 'devices revoke-all' for a lost device",
        evidence,
        "every approved device names its MDM asset",
        (
            devices.approved_without_asset > 0,
            PARTLY,
            f"{devices.approved_without_asset} approved device(s) without an asset id",
        ),
    )


def deployment(f: Facts) -> Assessment:
    return organisational(
        "deployment model",
        "DPO: confirm the gateway runs on-premises (not a public telecom service)",
        ev("store", f.settings.store.url.split("://", 1)[0]),
    )


def closed_group(f: Facts) -> Assessment:
    settings, server = f.settings, f.server
    evidence = (
        ev("xmpp.user_domains", list(settings.xmpp.user_domains)),
        ev("directory", "configured" if settings.directory else "not configured"),
        ev("server config read", server.source or None),
        *server_evidence(server, "confinement", "privilege"),
    )
    source = source_kind(server.source_of("confinement"))
    return judge(
        "members-only threads; only directory members of the hospital's domains",
        evidence,
        f"threads members-only and the server confines users ({source})",
        (not settings.xmpp.user_domains, NOT_MET, "xmpp.user_domains is empty"),
        (
            server.confinement is None,
            PARTLY,
            "server confinement unknown: no fresh answer from the running gateway "
            "(give --server-config)",
        ),
        (
            server.confinement is False,
            PARTLY,
            f"mod_clinic_confine not loaded: users can talk around the gateway ({source})",
        ),
    )


def dpia(_f: Facts) -> Assessment:
    return organisational(
        "DPIA facts exported by 'xmpp-clinic report --dpia'",
        "DPO: write and keep the impact assessment; the facts come from 'report --dpia'",
    )


def review(f: Facts) -> Assessment:
    state, every = f.state, f.settings.report.save_every_hours
    evidence = (
        ev("reports saved", state.saved_reports),
        ev("last saved report", state.last_saved_report),
        ev("report.save_every_hours", every or "off"),
    )
    return judge(
        "reports saved (hash-chained) on a schedule; 'report diff' shows changes",
        evidence,
        f"{state.saved_reports} report(s) kept",
        (
            not state.saved_reports,
            PARTLY,
            "no report saved yet: run 'report --save' or set report.save_every_hours",
        ),
    )


def self_hosted(_f: Facts) -> Assessment:
    return Assessment(
        "self-hosted by default; no external service needed",
        MET,
        "the gateway, its store and backups run on hospital infrastructure",
    )


def processors(f: Facts) -> Assessment:
    return organisational(
        "storage location",
        "DPO: record every processor (hosting, backup storage) and that it is in the EU/EEA",
        ev("store", f.settings.store.url.split("://", 1)[0]),
        ev("backup.directory", f.settings.backup.directory),
    )


def contract(_f: Facts) -> Assessment:
    return organisational(
        "processing contract (Art. 28)",
        "DPO: keep signed processing contracts with every processor",
    )


def provider_deletion(f: Facts) -> Assessment:
    server, state, retention = f.server, f.state, f.settings.retention
    evidence = (
        ev("retention.messages_days", retention.messages_days),
        ev("retention.server_archive", retention.server_archive),
        ev("last purge", state.last_purge),
        *server_evidence(server, "mam", "mam_expiry", "upload", "upload_expiry"),
    )
    control = "archive on hospital servers; retention purge, also of the server's MAM copies"
    if retention.server_archive != "none":
        reason = f"the gateway purges the server's copies ({retention.server_archive})"
        return Assessment(control, MET, reason, evidence)
    # Neither expiry is observable from the live server (disco says nothing of it), and
    # Prosody advertises MAM on accounts, not on the domain: a live "no MAM" is no proof.
    return judge(
        control,
        evidence,
        f"the server expires its archive ({server.mam_expiry}, config file)",
        (
            not server.source,
            PARTLY,
            "retention.server_archive = 'none' and server expiry not checked (--server-config)",
        ),
        (
            server.mam_expiry is None,
            PARTLY,
            "retention.server_archive = 'none' and the server keeps its archive forever",
        ),
    )


def updates(f: Facts) -> Assessment:
    found = client_versions(f)
    return Assessment(
        "client version report (see I.13)", found.status, found.reason, found.evidence
    )


RULES: dict[str, Rule] = {
    "II.1": e2e,
    "II.2": integrity,
    "II.3": metadata,
    "II.4": open_protocols,
    "III.1": device_protection,
    "III.2": updates,
    "III.3": mdm,
    "IV.1": deployment,
    "IV.2": closed_group,
    "IV.3": dpia,
    "IV.4": review,
    "IV.5": self_hosted,
    "IV.6": processors,
    "IV.7": contract,
    "IV.8": provider_deletion,
    "IV.9": updates,
}
