"""ADT from the HIS, read strictly: A01 admit, A03 discharge, A08 update, A40 merge (I.6, I.7).

:func:`read` turns one message into an :class:`AdtEvent` or an :class:`AdtRefusal` that
names the segment and field at fault (HL7 ERR-2) with an error code from HL7 table 0357;
a refused message changes nothing. :func:`ack` writes the answer (MSA, and ERR when
refused). Only the ``hl7`` wrapper in :mod:`.hl7wire` parses.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from xmpp_clinic.bridge import hl7wire

SUPPORTED = ("A01", "A03", "A08", "A40")
_ID = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
_TS = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


@dataclass(frozen=True)
class AdtEvent:
    """What an ADT message asks for, checked."""

    trigger: str
    control_id: str
    patient: str  # PID-3.1
    visit: str  # PV1-19 ("" for A40)
    ward: str  # PV1-3.1
    at: datetime | None  # PV1-44 (A01) or PV1-45 (A03)
    merged_patient: str = ""  # MRG-1.1 (A40)


@dataclass(frozen=True)
class AdtRefusal:
    """Why a message was refused: ``code`` AR (malformed) or AE (cannot apply)."""

    code: str
    segment: str
    field: int
    error: int  # HL7 table 0357: 101 required field missing, 102 data type error, ...
    text: str
    control_id: str = ""
    trigger: str = ""


class _Refuse(Exception):
    def __init__(self, segment: str, field: int, error: int, text: str) -> None:
        super().__init__(text)
        self.where = (segment, field, error, text)


def _field(message: Any, segment: str, field: int, *, component: int = 1, required: bool) -> str:
    try:
        value = str(message.extract_field(segment, field_num=field, component_num=component))
    except KeyError:
        if required:
            raise _Refuse(segment, 0, 100, f"segment {segment} is missing") from None
        return ""
    except IndexError:
        value = ""
    if required and not value:
        raise _Refuse(segment, field, 101, f"{segment}-{field} is required")
    return value


def _identifier(message: Any, segment: str, field: int, *, required: bool = True) -> str:
    value = _field(message, segment, field, required=required)
    if value and not _ID.match(value):
        raise _Refuse(
            segment,
            field,
            102,
            f"{segment}-{field} is not an identifier (1-64 of A-Z a-z 0-9 . _ : / -)",
        )
    return value


def _time(message: Any, segment: str, field: int) -> datetime | None:
    raw = _field(message, segment, field, required=False)
    if not raw:
        return None
    match = _TS.match(raw)
    try:
        if match is None:
            raise ValueError(raw)
        y, mo, d, h, mi, s, _zone = match.groups()
        # Without an offset the HIS means its local time; we read it as UTC and say so.
        return datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), tzinfo=UTC)
    except ValueError:
        raise _Refuse(segment, field, 102, f"{segment}-{field} is not an HL7 timestamp") from None


def read(text: str) -> AdtEvent | AdtRefusal:
    """Check one ADT message; the event it asks for, or the first field at fault."""
    try:
        message = hl7wire.parse(text.strip("\r\n"))
    except Exception:  # the parser's own errors are not typed; any of them means malformed
        return AdtRefusal("AR", "MSH", 0, 100, "not an HL7 v2 message (MSH first)")
    control_id, trigger = "", ""
    try:
        control_id = _field(message, "MSH", 10, required=True)
        if _field(message, "MSH", 9, required=True) != "ADT":
            raise _Refuse("MSH", 9, 200, "only ADT messages are accepted here")
        trigger = _field(message, "MSH", 9, component=2, required=True)
        if trigger not in SUPPORTED:
            raise _Refuse(
                "MSH", 9, 201, f"event {trigger or '?'} is not one of {', '.join(SUPPORTED)}"
            )
        patient = _identifier(message, "PID", 3, required=trigger != "A03")
        if trigger == "A40":
            merged = _identifier(message, "MRG", 1)
            return AdtEvent(trigger, control_id, patient, "", "", None, merged)
        visit = _identifier(message, "PV1", 19)
        ward = _identifier(message, "PV1", 3, required=trigger == "A01")
        at = _time(message, "PV1", 45 if trigger == "A03" else 44)
        return AdtEvent(trigger, control_id, patient, visit, ward, at)
    except _Refuse as refused:
        segment, field, error, detail = refused.where
        return AdtRefusal("AR", segment, field, error, detail, control_id, trigger)


def ack(
    original: str, code: str, *, control_id: str, trigger: str, refusal: AdtRefusal | None = None
) -> str:
    """The ACK for a message: MSH (sender and receiver swapped), MSA, and ERR if refused."""
    head = original.split("\r", 1)[0].split("|") if original.startswith("MSH") else []

    def msh(n: int) -> str:
        return head[n - 1] if len(head) >= n else ""

    now = datetime.now(UTC).strftime("%Y%m%d%H%M%S+0000")
    segments = [
        f"MSH|^~\\&|{msh(5)}|{msh(6)}|{msh(3)}|{msh(4)}|{now}||ACK^{trigger}^ACK|"
        f"{uuid.uuid4().hex[:20]}|P|2.5",
        f"MSA|{code}|{hl7wire.escape(control_id)}"
        + (f"|{hl7wire.escape(refusal.text)}" if refusal else ""),
    ]
    if refusal is not None:
        where = f"{refusal.segment}^1^{refusal.field}" if refusal.field else refusal.segment
        severity = "E"
        segments.append(
            f"ERR||{where}|{refusal.error}^{hl7wire.escape(refusal.text)}^HL70357|{severity}"
        )
    return "\r".join(segments) + "\r"
