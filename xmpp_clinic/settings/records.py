"""``[records]``: the documentation member of documented threads (I.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from xmpp_clinic.settings.base import FilePath, Section


class RecordsSettings(Section):
    """The announced documentation device and its key file (I.6, II.1).

    ``localpart`` names the member ``<localpart>@<component>`` (no thread may take it);
    ``key_file`` holds the 32-byte key that encrypts its OMEMO identity, its sessions and
    the per-thread data keys of documentation copies (created 0600 when missing and no
    identity exists yet).
    """

    localpart: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = "records"
    key_file: FilePath = Path("records-key")
