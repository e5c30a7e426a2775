"""``[retention]`` and ``[backup]``: how long data is kept, and where backups go (I.7, I.9).

Defaults are the strictest ones (I.12): messages 30 days, connection and audit metadata
one year at most, pending devices a week, purge every quarter hour, receipts signed.
Periods are minute-granular in the CLI (``30d``, ``12h``, ``90m``); the file holds the
hospital-wide defaults in days and the purge interval in minutes.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from xmpp_clinic.settings.base import FilePath, Section

# An OpenPGP v4 fingerprint: 40 hex digits (v5/v6: 64). Short key ids are refused:
# they collide, and a backup encrypted to the wrong key is a data breach (I.9).
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")


def _fingerprint(raw: str) -> str:
    value = raw.replace(" ", "").upper()
    if not _FINGERPRINT.match(value):
        raise ValueError(f"{raw!r} is not a full OpenPGP fingerprint (40 hex digits)")
    return value


Fingerprint = Annotated[str, AfterValidator(_fingerprint)]


class RetentionSettings(Section):
    """Retention windows and the purge job (I.7, IV.8, II.3)."""

    messages_days: Annotated[int, Field(ge=1, le=36500)] = 30
    audit_metadata_days: Annotated[int, Field(ge=1, le=36500)] = 365
    # Devices never approved, and devices not seen for this long, are forgotten (IV.8).
    pending_devices_days: Annotated[int, Field(ge=1, le=3650)] = 7
    inactive_devices_days: Annotated[int, Field(ge=1, le=3650)] = 90
    # Delivery records (who got, fetched, read which message, II.2) and settled part sets
    # are metadata (II.3): kept this long at most; those of purged messages go with them.
    delivery_records_days: Annotated[int, Field(ge=1, le=3650)] = 30
    purge_interval_minutes: Annotated[int, Field(ge=1, le=10080)] = 15
    # Rows deleted per transaction: small enough that relaying never waits long (I.12).
    purge_batch: Annotated[int, Field(ge=10, le=100000)] = 2000
    # After each batch, rest this many times as long as the batch took (0: no rest).
    purge_rest: Annotated[float, Field(ge=0, le=20)] = 1.0
    # The gateway's Ed25519 key that signs deletion receipts (created 0600 on first use).
    receipt_key_file: FilePath = Path("receipt-key.pem")
    # Receipts are also written here, apart from the store: a restore re-applies them.
    receipts_directory: FilePath = Path("receipts")
    # The server's own MAM copies (I.7, IV.8): "none" is reported on every purge run.
    server_archive: Literal["none", "prosody", "ejabberd"] = "none"
    ejabberd_api_url: Annotated[str, Field(pattern=r"^https?://")] | None = None
    prosodyctl: str = "prosodyctl"
    prosody_config: FilePath | None = None


class BackupSettings(Section):
    """Encrypted backups to hospital-held keys (I.9)."""

    directory: FilePath | None = None
    recipients: list[Fingerprint] = Field(default_factory=list)
    # The keyring holding the recipients' public keys and the gateway's signing key.
    gnupghome: FilePath | None = None
    # The gateway's own signing key; empty: the keyring's only secret key.
    signing_key: Fingerprint | None = None
    gpg_binary: str = "gpg"
