"""``[retention]`` and ``[backup]``: how long data is kept, and where backups go (I.7, I.9)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from xmpp_clinic.settings.base import FilePath, Section


class RetentionSettings(Section):
    """Retention windows (I.7, IV.8, II.3)."""

    messages_days: Annotated[int, Field(ge=1)] = 30
    audit_metadata_days: Annotated[int, Field(ge=1)] = 365


class BackupSettings(Section):
    """Encrypted backups to hospital-held keys (I.9)."""

    directory: FilePath | None = None
    recipients: list[str] = Field(default_factory=list)
