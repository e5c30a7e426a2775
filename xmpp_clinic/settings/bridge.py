"""``[bridge]``: the HIS bridge (I.6); off until configured.

``[bridge] listen`` starts the HTTP API (FHIR R4 and the thread API); ``[bridge.hl7]``
names the HIS's MLLP receiver for MDM^T02 pushes; ``[bridge.adt] listen`` opens the MLLP
listener for ADT A01/A03/A08/A40. Each part is off while its address is unset.

``[bridge.adt.ward_threads]`` maps a ward's point-of-care code (PV1-3.1, as the HIS
sends it) to the directory group of its staff: an A01 on such a ward opens one case
thread per admission, bound to that group::

    [bridge.adt.ward_threads]
    "4B" = "ward-4b"
    ICU = "ward-icu"
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator

from xmpp_clinic.directory.model import InvalidGroup, check_group
from xmpp_clinic.settings.base import FilePath, Section

Port = Annotated[int, Field(ge=1, le=65535)]
# A ward code as ADT carries it in PV1-3.1 (the same shape bridge.adt reads identifiers in).
_WARD_CODE = re.compile(r"^[A-Za-z0-9._:/-]{1,64}$")
MAX_WARDS = 1000


class Hl7PushSettings(Section):
    """Where MDM^T02 documents go (the HIS's MLLP receiver) and how to retry (I.6)."""

    host: str = ""
    port: Port = 2575
    sending_application: str = "XMPP-CLINIC"
    sending_facility: str = "CLINIC"
    receiving_application: str = "HIS"
    receiving_facility: str = "HOSPITAL"
    ack_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    retry_first_seconds: float = Field(default=5.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=900.0, gt=0, le=86400)
    poll_seconds: float = Field(default=2.0, gt=0, le=600)
    # Unset: documents go to the HIS only when a thread is closed (threads close, A03).
    push_interval_minutes: int | None = Field(default=None, ge=1, le=7 * 24 * 60)


class AdtSettings(Section):
    """The MLLP listener for ADT from the HIS (admissions, discharges, merges)."""

    listen: str = ""  # "host:port"; empty: no listener
    ward_threads: dict[str, str] = Field(default_factory=dict)  # PV1-3.1 -> directory group

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return _checked_address(value) if value else value

    @field_validator("ward_threads")
    @classmethod
    def _wards(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_WARDS:
            raise ValueError(f"at most {MAX_WARDS} wards")
        for ward, group in value.items():
            if not _WARD_CODE.match(ward):
                raise ValueError(
                    f"ward code {ward!r} is not a PV1-3 point of care "
                    "(1-64 of A-Z a-z 0-9 . _ : / -)"
                )
            try:
                check_group(group)
            except InvalidGroup as exc:
                raise ValueError(f"ward {ward!r}: {exc}") from None
        return value


class BridgeSettings(Section):
    """The HIS bridge's HTTP API, HL7 v2 push and ADT listener (I.6)."""

    enabled: bool = False
    listen: str = "127.0.0.1:8787"
    page_limit: int = Field(default=100, ge=1, le=1000)
    rate_per_minute: int = Field(default=600, ge=1, le=100000)
    tls_cert: FilePath | None = None
    tls_key: FilePath | None = None
    tls_client_ca: FilePath | None = None  # the hospital CA: set it to require client certs
    hl7: Hl7PushSettings = Hl7PushSettings()
    adt: AdtSettings = AdtSettings()

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return _checked_address(value)

    @model_validator(mode="after")
    def _tls_pair(self) -> BridgeSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key")
        return self


def _checked_address(value: str) -> str:
    host_port(value)
    return value


def host_port(listen: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:8787`` for IPv6; port 0: any free one); else ValueError."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{listen!r} is not host:port")
    return host.strip("[]") or "127.0.0.1", int(port)
