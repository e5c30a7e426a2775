"""FHIR R4 resources for documented threads, built and validated with fhir.resources (I.6).

- ``Communication`` per documented message: sender (Practitioner by XMPP address),
  subject (Patient by the HIS's patient number, PID-3) and encounter (visit, PV1-19),
  ``sent``, the text as payload, files as ``Attachment`` with size and SHA-1.
- ``DocumentReference`` per documented thread: the transcript, after the ISiK
  Dokumentenaustausch metadata, as ``text/plain; charset=utf-8``. Plain text, not PDF/A:
  a chat transcript has no layout to preserve; the text is exactly what was written,
  hashable and searchable in the HIS, identical to the MDM^T02 OBX (so one document has
  one content on both paths), and it needs no PDF renderer whose PDF/A conformance we
  could not verify offline. A hospital that must archive PDF/A renders it in its archive.
- ``Bundle`` searchsets and the ``CapabilityStatement``.

Patients and encounters are referenced by identifier (the HIS's numbers), since the
gateway does not know the HIS's FHIR resource ids.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.resource import Resource

from xmpp_clinic import __version__
from xmpp_clinic.bridge.cases import Case
from xmpp_clinic.bridge.records import DocumentedAttachment, DocumentedMessage
from xmpp_clinic.clock import as_utc

JID_SYSTEM = "urn:ietf:rfc:7622"  # XMPP addresses
PATIENT_SYSTEM = "urn:xmpp-clinic:his:patient"  # PID-3 as the HIS sends it
VISIT_SYSTEM = "urn:xmpp-clinic:his:visit"  # PV1-19
THREAD_SYSTEM = "urn:xmpp-clinic:thread"
LOINC_PROGRESS_NOTE = {"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}
TEXT_PLAIN = "text/plain; charset=utf-8"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,48}$")


def thread_id(thread: str) -> str:
    """The FHIR id of a thread's resources: the name, or a digest where FHIR forbids it."""
    if _FHIR_ID.match(thread):
        return thread
    return "x-" + hashlib.sha256(thread.encode()).hexdigest()[:32]


def _stamp(at: datetime) -> str:
    return as_utc(at).isoformat()


def _subject(case: Case | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if case is not None and case.patient:
        out["subject"] = {"identifier": {"system": PATIENT_SYSTEM, "value": case.patient}}
    if case is not None:
        out["encounter"] = {"identifier": {"system": VISIT_SYSTEM, "value": case.visit}}
    return out


def _attachment(item: DocumentedAttachment, base: str) -> dict[str, Any]:
    url = base.rstrip("/") + item.url if item.url.startswith("/") else item.url
    return {
        "contentType": item.media_type or "application/octet-stream",
        "url": url,
        "size": item.size,
        "hash": base64.b64encode(item.sha1).decode(),
        **({"title": item.title} if item.title else {}),
    }


def _not_stored(item: DocumentedAttachment) -> str:
    """ "file scan.png not in the record (too-large)" (II.2)."""
    return f"file {item.title or item.number} not in the record ({item.reason or item.status})"


def communication(
    thread: str, case: Case | None, message: DocumentedMessage, base: str = ""
) -> Communication:
    """One documented message as a validated ``Communication``; ``base``: the API's
    root URL, which makes the attachments' URLs absolute."""
    payload: list[dict[str, Any]] = []
    if message.body:
        payload.append({"contentString": message.body})
    payload.extend(
        {"contentAttachment": _attachment(a, base)} for a in message.attachments if a.stored
    )
    notes = [_not_stored(a) for a in message.attachments if not a.stored]
    data: dict[str, Any] = {
        "resourceType": "Communication",
        "id": f"{thread_id(thread)}.{message.seq}",
        "identifier": [{"system": THREAD_SYSTEM, "value": f"{thread}/{message.stanza_id}"}],
        "status": "unknown" if message.gap else "completed",
        "sent": _stamp(message.at),
        "sender": {
            "type": "Practitioner",
            "identifier": {"system": JID_SYSTEM, "value": message.sender},
        },
        **_subject(case),
    }
    if message.gap:
        data["statusReason"] = {"text": "no documentation copy (sender did not encrypt to it)"}
    if message.missing_parts:
        notes.insert(0, _missing(message))
    if notes:
        data["note"] = [{"text": n} for n in notes]
    if payload:
        data["payload"] = payload
    return Communication.model_validate(data)


def _missing(message: DocumentedMessage) -> str:
    """ "part 2 of 3 never arrived" (II.2), every missing part named."""
    numbers = ", ".join(str(n) for n in message.missing_parts)
    noun = "part" if len(message.missing_parts) == 1 else "parts"
    return f"{noun} {numbers} of {message.parts} never arrived"


def transcript(thread: str, title: str, messages: Sequence[DocumentedMessage]) -> str:
    """The thread as plain text: one message per paragraph, gaps and missing parts said."""
    lines = [f"Thread {thread}: {title}", ""]
    for m in messages:
        head = f"[{m.seq}] {as_utc(m.at).strftime('%Y-%m-%d %H:%M:%SZ')} {m.sender}"
        if m.gap:
            lines.append(f"{head}: (no documentation copy of this message)")
            continue
        lines.append(f"{head}: {m.body}")
        for a in m.attachments:
            if a.stored:
                lines.append(f"    file {a.title or a.url} ({a.media_type}, {a.size} bytes)")
            else:
                lines.append(f"    {_not_stored(a)}")
        if m.missing_parts:
            lines.append(f"    ({_missing(m)})")
        elif m.parts_missing:
            lines.append(f"    ({m.parts_missing} part(s) of this message never arrived)")
    return "\n".join(lines) + "\n"


def document_reference(
    thread: str, title: str, case: Case | None, messages: Sequence[DocumentedMessage]
) -> DocumentReference:
    """A thread's transcript as a validated ``DocumentReference`` (ISiK metadata)."""
    text = transcript(thread, title, messages).encode()
    last = max((m.at for m in messages), default=None)
    attachment: dict[str, Any] = {
        "contentType": TEXT_PLAIN,
        "language": "de",
        "data": base64.b64encode(text).decode(),
        "size": len(text),
        "hash": base64.b64encode(hashlib.sha1(text).digest()).decode(),
        "title": title or thread,
    }
    if last is not None:
        attachment["creation"] = _stamp(last)
    context = {}
    if case is not None:
        context["encounter"] = [{"identifier": {"system": VISIT_SYSTEM, "value": case.visit}}]
    data: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": thread_id(thread),
        "masterIdentifier": {"system": THREAD_SYSTEM, "value": f"{thread}/v{len(messages)}"},
        "status": "current",
        "docStatus": "final",
        "type": {"coding": [LOINC_PROGRESS_NOTE], "text": "Verlaufsdokumentation"},
        "description": title or thread,
        "content": [
            {
                "attachment": attachment,
                "format": {"code": "urn:ihe:iti:xds:2017:mimeTypeSufficient"},
            }
        ],
        **({"context": context} if context else {}),
    }
    if case is not None and case.patient:
        data["subject"] = {"identifier": {"system": PATIENT_SYSTEM, "value": case.patient}}
    if last is not None:
        data["date"] = _stamp(last)
    return DocumentReference.model_validate(data)


def searchset(base: str, resources: Sequence[Resource], next_url: str | None) -> Bundle:
    """A ``Bundle`` of type searchset with ``match`` entries and a next link when paged."""
    links = [{"relation": "next", "url": next_url}] if next_url else []
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(resources) if next_url is None else None,
            "link": links or None,
            "entry": [
                {
                    "fullUrl": f"{base}/{r.get_resource_type()}/{r.id}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in resources
            ]
            or None,
        }
    )


def capability_statement(now: datetime) -> CapabilityStatement:
    """What the bridge's FHIR endpoint serves: read and search, JSON only."""

    def resource(kind: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        return {
            "type": kind,
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "searchParam": [{"name": n, "type": t} for n, t in params],
        }

    search = [("patient", "token"), ("encounter", "token"), ("_count", "number")]
    return CapabilityStatement.model_validate(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": _stamp(now),
            "kind": "instance",
            "software": {"name": "xmpp-clinic", "version": __version__},
            "fhirVersion": "4.0.1",
            "format": ["json"],
            "rest": [
                {
                    "mode": "server",
                    "security": {
                        "service": [{"text": "OAuth-style bearer tokens (bridge token create)"}],
                        "description": "Bearer token with scope records:read",
                    },
                    "resource": [
                        resource("Communication", [*search, ("thread", "string")]),
                        resource("DocumentReference", search),
                    ],
                }
            ],
        }
    )


def as_json(resource: Resource) -> dict[str, Any]:
    """The resource as FHIR JSON (no nulls)."""
    out: dict[str, Any] = resource.model_dump(mode="json", exclude_none=True)
    return out
