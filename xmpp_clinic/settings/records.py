"""``[records]``: the documentation member of documented threads (I.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from xmpp_clinic.settings.base import FilePath, Section

# ``host``, ``host:port``; ``http://host[:port]`` allows plain HTTP to that host only.
AttachmentHost = Annotated[
    str, Field(pattern=r"^(http://)?[a-z0-9]([a-z0-9.-]{0,252}[a-z0-9])?(:[0-9]{1,5})?$")
]
MediaType = Annotated[str, Field(pattern=r"^[a-z0-9.+-]+/[a-z0-9.+-]+$")]

DEFAULT_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp", "application/pdf"]


class RecordsSettings(Section):
    """The announced documentation device and its key file (I.6, II.1).

    ``localpart`` names the member ``<localpart>@<component>`` (no thread may take it);
    ``key_file`` holds the 32-byte key that encrypts its OMEMO identity, its sessions and
    the per-thread data keys of documentation copies (created 0600 when missing and no
    identity exists yet).

    Attachments (XEP-0454 ``aesgcm://`` links) are fetched only from the hospital's own
    upload service: ``attachment_hosts`` lists the hosts (empty: nothing is fetched, each
    link is recorded as an attachment gap). HTTPS unless an entry says ``http://``;
    ``attachment_ca_file`` names the hospital CA when the upload service's certificate
    is not publicly trusted. A file larger than ``max_attachment_bytes`` or whose
    content (sniffed, not declared) is not in ``attachment_types`` is refused (a gap
    with its reason); images lose their metadata (EXIF/GPS, I.10).
    """

    localpart: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = "records"
    key_file: FilePath = Path("records-key")
    attachment_hosts: list[AttachmentHost] = Field(default_factory=list)
    attachment_ca_file: FilePath | None = None
    max_attachment_bytes: int = Field(default=20 * 1024 * 1024, ge=1, le=1024 * 1024 * 1024)
    attachment_types: list[MediaType] = Field(default_factory=lambda: list(DEFAULT_TYPES))
    attachment_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    attachment_fetches: int = Field(default=2, ge=1, le=16)  # at once, per gateway
