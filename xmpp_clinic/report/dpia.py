"""Facts for the data protection impact assessment (IV.3), from config and schema.

Data categories are the store's tables, grouped by the domain module that defines them
and described by that module's docstring, so a new table shows up here by itself. Who
reads a category and how long it is kept come from :data:`ACCESS` and the retention
settings; a table without an entry is listed as "review" for the DPO.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

from xmpp_clinic.config import Settings
from xmpp_clinic.store.base import Base

REVIEW = "review: not yet described for the DPIA"


@dataclass(frozen=True)
class Category:
    """One data category: what it is, where it lives, who reads it, how long it stays."""

    name: str
    description: str
    tables: tuple[str, ...]
    fields: tuple[str, ...]
    stored_in: str
    readers: str
    retention: str


@dataclass(frozen=True)
class DpiaFacts:
    gateway: str
    deployment: str
    categories: tuple[Category, ...]
    recipients: tuple[str, ...]
    processors: tuple[str, ...]
    third_parties: str = "none: no telemetry, crash reporting or analytics"


def _access(settings: Settings) -> dict[str, tuple[str, str]]:
    """Readers and retention per model module (the domain that owns the tables)."""
    messages = f"{settings.retention.messages_days} days (retention.messages_days)"
    audit = f"{settings.retention.audit_metadata_days} days (retention.audit_metadata_days)"
    return {
        "threads": ("thread members; IT admins", "until the thread is deleted"),
        "messages": (
            "content: approved devices of members only (end-to-end encrypted); metadata: IT admins",
            messages,
        ),
        "devices": ("IT admins", "until the device is removed from the registry"),
        "audit": ("IT admins, auditors", audit),
        "gateway": ("IT admins", audit),
        "directory": ("IT admins; members see names in threads", "while in the directory"),
        "retention": ("IT admins, auditors", "kept as proof of deletion"),
        "report": ("IT admins, DPO, auditors", "kept for the regular review (IV.4)"),
    }


def _store_location(settings: Settings) -> str:
    url = settings.store.url
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        return f"SQLite file {rest}"
    host = rest.rsplit("@", 1)[-1]
    return f"PostgreSQL at {host}"


def dpia_facts(settings: Settings) -> DpiaFacts:
    """The DPIA facts of this gateway (IV.3)."""
    access = _access(settings)
    groups: dict[str, list[type]] = {}
    for mapper in Base.registry.mappers:
        module = mapper.class_.__module__.rsplit(".", 1)[-1]
        groups.setdefault(module, []).append(mapper.class_)
    location = _store_location(settings)
    categories = []
    for module, classes in sorted(groups.items()):
        doc = sys.modules[classes[0].__module__].__doc__ or ""
        tables = tuple(c.__tablename__ for c in classes)  # type: ignore[attr-defined]
        fields = tuple(
            f"{t.name}.{col.name}"
            for c in classes
            for t in [c.__table__]  # type: ignore[attr-defined]
            for col in t.columns
        )
        readers, retention = access.get(module, (REVIEW, REVIEW))
        categories.append(
            Category(
                module,
                doc.strip().splitlines()[0] if doc else "",
                tables,
                fields,
                location,
                readers,
                retention,
            )
        )
    recipients = ["the hospital's XMPP server (transport; its own archive per its config)"]
    if settings.bridge.enabled:
        recipients.append(f"HIS through the bridge at {settings.bridge.listen}")
    if settings.backup.recipients:
        recipients.append("encrypted backups readable by: " + ", ".join(settings.backup.recipients))
    processors = [f"store: {location}"]
    if settings.backup.directory is not None:
        processors.append(f"backups: {settings.backup.directory}")
    return DpiaFacts(
        gateway=settings.xmpp.component_jid,
        deployment="self-hosted on hospital infrastructure (IV.5)",
        categories=tuple(categories),
        recipients=tuple(recipients),
        processors=tuple(processors),
    )


def dpia_json(facts: DpiaFacts) -> str:
    return json.dumps(asdict(facts), indent=2, ensure_ascii=False) + "\n"


def dpia_markdown(facts: DpiaFacts) -> str:
    lines = [
        f"# DPIA facts: {facts.gateway}",
        "",
        f"- Deployment: {facts.deployment}",
        f"- Third parties: {facts.third_parties}",
        "- Recipients: " + "; ".join(facts.recipients),
        "- Processors and storage: " + "; ".join(facts.processors),
        "",
        "## Data categories",
        "",
    ]
    for item in facts.categories:
        lines += [
            f"### {item.name}",
            "",
            item.description,
            "",
            f"- Stored in: {item.stored_in} (tables {', '.join(item.tables)})",
            f"- Who can read it: {item.readers}",
            f"- Retention: {item.retention}",
            f"- Fields: {', '.join(item.fields)}",
            "",
        ]
    return "\n".join(lines)
