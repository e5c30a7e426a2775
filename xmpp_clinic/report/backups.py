"""The newest encrypted backup, verified now (I.9).

Backups are files in ``backup.directory`` (``retention.backup``); the report finds the
newest one, and where ``backup.gnupghome`` holds the public keys it checks the signature
and payload digest now, as ``xmpp-clinic backup verify`` does. No private key is needed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from xmpp_clinic.retention.backup import SUFFIX, BackupError, read_manifest, verify
from xmpp_clinic.settings.retention import BackupSettings


@dataclass(frozen=True)
class BackupFacts:
    last_backup: str | None  # ISO time of the newest backup; "never"; None: no directory
    verified: str | None  # "verified now (signer ...)", "FAILED: ...", None: not checked


def _newest(directory: Path) -> Path | None:
    found = sorted(directory.glob(f"*{SUFFIX}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _check(settings: BackupSettings) -> BackupFacts:
    if settings.directory is None or not settings.directory.is_dir():
        return BackupFacts(None, None)
    newest = _newest(settings.directory)
    if newest is None:
        return BackupFacts("never", None)
    try:
        created = read_manifest(newest).created_at.isoformat()
    except (BackupError, KeyError, ValueError) as exc:
        return BackupFacts(f"unreadable ({newest.name})", f"FAILED: {exc}")
    if settings.gnupghome is None:
        return BackupFacts(created, None)
    try:
        _manifest, signer = verify(newest, settings.gnupghome, settings.gpg_binary)
    except (BackupError, OSError, ValueError) as exc:
        return BackupFacts(created, f"FAILED: {exc}")
    return BackupFacts(created, f"verified now ({newest.name}, signed by {signer})")


async def backup_facts(settings: BackupSettings) -> BackupFacts:
    """The newest backup and its verification; GnuPG runs off the event loop."""
    return await asyncio.to_thread(_check, settings)
