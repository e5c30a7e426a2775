"""MDM^T02 (original document with content) and MDM^T10 (replacement) for a thread (I.6).

The document is the thread's transcript (the same text as the FHIR DocumentReference),
one OBX (TX) per line. TXA-12 is ``<thread>/v<version>``; a T10 names the version it
replaces in TXA-13. PID-3 and PV1-19 come from the case the thread is bound to (ADT).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from xmpp_clinic.bridge.cases import Case
from xmpp_clinic.bridge.hl7wire import SEGMENT_END, escape
from xmpp_clinic.clock import as_utc
from xmpp_clinic.settings.bridge import Hl7PushSettings


@dataclass(frozen=True)
class MdmDocument:
    """What one MDM message carries."""

    control_id: str
    event: str  # "T02" or "T10"
    thread: str
    version: int
    case: Case | None
    transcript: str
    created: datetime


def _ts(at: datetime) -> str:
    return as_utc(at).strftime("%Y%m%d%H%M%S+0000")


def build(doc: MdmDocument, hl7: Hl7PushSettings, now: datetime) -> str:
    """The message as HL7 v2.5 text (segments separated by CR)."""
    patient = escape(doc.case.patient) if doc.case and doc.case.patient else ""
    visit = escape(doc.case.visit) if doc.case else ""
    ward = escape(doc.case.ward) if doc.case else ""
    number = escape(f"{doc.thread}/v{doc.version}")
    parent = escape(f"{doc.thread}/v{doc.version - 1}") if doc.event == "T10" else ""
    msh = "|".join(
        [
            "MSH",
            "^~\\&",
            escape(hl7.sending_application),
            escape(hl7.sending_facility),
            escape(hl7.receiving_application),
            escape(hl7.receiving_facility),
            _ts(now),
            "",
            f"MDM^{doc.event}^MDM_T02",
            doc.control_id,
            "P",
            "2.5",
            "",
            "",
            "AL",
            "NE",
            "",
            "UNICODE UTF-8",
        ]
    )
    # TXA-2 CN (consultation, table 0270), TXA-4/6 activity and origination time,
    # TXA-12 unique document number, TXA-13 parent (T10), TXA-17 AU (authenticated).
    txa = ["TXA", "1", "CN", "TX", _ts(doc.created), "", _ts(doc.created)]
    txa += ["", "", "", "", "", number, parent, "", "", "", "AU"]
    segments = [
        msh,
        f"EVN|{doc.event}|{_ts(now)}",
        f"PID|||{patient}",
        f"PV1||I|{ward}" + "|" * 16 + visit,
        "|".join(txa),
    ]
    for n, line in enumerate(doc.transcript.splitlines() or [""], start=1):
        segments.append(f"OBX|{n}|TX|TRANSCRIPT^Thread transcript||{escape(line)}||||||F")
    return SEGMENT_END.join(segments) + SEGMENT_END
