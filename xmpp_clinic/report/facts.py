"""The facts a report rests on, as plain data (I.11): config, state, server, tests.

Gathered once from the live system (``report.gather``, ``report.server``,
``report.tests``); the rules in ``report.controls`` only read them. ``None`` means
"not available": the table, file or answer that would tell does not exist here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xmpp_clinic.report.model import TestProof


@dataclass(frozen=True)
class DeviceFacts:
    """The OMEMO device registry by state (I.4, I.5, III.3)."""

    pending: int = 0
    approved: int = 0
    expired: int = 0
    revoked: int = 0
    approved_without_fingerprint: int = 0  # approved before a key IT could compare
    approved_without_asset: int = 0  # approved without an MDM asset id (III.3)


@dataclass(frozen=True)
class AuditFacts:
    """The audit chain and the message archive chains, verified now (II.2, IV.4)."""

    intact: bool = True
    events: int = 0
    head: str = ""
    problem: str = ""
    broken_archives: tuple[str, ...] = ()


@dataclass(frozen=True)
class ClientFacts:
    """Client sessions whose software was recorded, and the outdated ones (I.13)."""

    sessions: int = 0
    outdated: tuple[str, ...] = ()  # "alice@h/phone: client Conversations 2.10.0 < 2.16"


@dataclass(frozen=True)
class StateFacts:
    """What the store says now. ``None``: that part is not built or not migrated here."""

    threads: int = 0
    members: int = 0
    devices: DeviceFacts = field(default_factory=DeviceFacts)
    audit: AuditFacts = field(default_factory=AuditFacts)
    clients: ClientFacts | None = None
    undocumented_threads: int | None = None
    last_purge: str | None = None
    last_receipt: str | None = None
    last_backup: str | None = None
    last_backup_verified: str | None = None
    bridge_tokens: tuple[str, ...] | None = None  # "name: scope, scope"
    saved_reports: int = 0
    last_saved_report: str | None = None


@dataclass(frozen=True)
class ServerFacts:
    """The XMPP server's side: observed live by the gateway, else read from its config file.

    ``sources`` says, per fact, where it came from (``report.server_facts``).
    """

    source: str = ""  # the config file read; "" when none was given
    kind: str = ""  # "prosody" or "ejabberd"
    confinement: bool | None = None  # mod_clinic_confine loaded
    privilege: bool | None = None  # XEP-0356 granted to the gateway
    mam_expiry: str | None = None  # the server's own archive expiry, as configured
    upload_expiry: str | None = None
    server_archive: bool | None = None  # MAM advertised by the user domain (live only)
    upload_service: str | None = None  # the upload service's JID, "" for none (live only)
    grant: str | None = None  # the XEP-0356 grant as advertised (live only)
    observed: str | None = None  # when the live answers used were given, and their age
    sources: dict[str, str] = field(default_factory=dict)

    def source_of(self, fact: str) -> str:
        """Where ``fact`` came from: the live server, the config file, or why unknown."""
        if fact in self.sources:
            return self.sources[fact]
        return f"config file {self.source}" if self.source else "unknown: no source"


@dataclass(frozen=True)
class TestFacts:
    """Tests that carry ``@pytest.mark.requirement`` and, if given, their outcomes."""

    by_requirement: dict[str, tuple[TestProof, ...]] = field(default_factory=dict)
    run_summary: str = ""  # "412 tests: 410 passed, 2 skipped" when a JUnit file was read

    def proofs(self, requirement: str) -> tuple[TestProof, ...]:
        return self.by_requirement.get(requirement, ())
