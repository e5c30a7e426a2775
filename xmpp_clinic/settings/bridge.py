"""``[bridge]``: the HIS bridge (I.6); off until configured.

``[bridge] listen`` starts the HTTP API (FHIR R4 and the thread API); ``[bridge.hl7]``
names the HIS's MLLP receiver for MDM^T02 pushes; ``[bridge.adt] listen`` opens the MLLP
listener for ADT A01/A03/A08/A40. Each part is off while its address is unset.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator

from xmpp_clinic.settings.base import FilePath, Section

Port = Annotated[int, Field(ge=1, le=65535)]


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


class AdtSettings(Section):
    """The MLLP listener for ADT from the HIS (admissions, discharges, merges)."""

    listen: str = ""  # "host:port"; empty: no listener

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        return _checked_address(value) if value else value


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
