"""Encrypted backups: create, verify, restore, prune (I.9, I.7).

A backup file is a tar of three members:

- ``payload.gpg``: the snapshot (:mod:`.snapshot`), encrypted with GnuPG to the
  hospital's keys (``backup.recipients``) and signed with the gateway's key. The
  gateway holds no private key that can decrypt it (I.9).
- ``manifest.json``: what an auditor may see without decrypting: when, from which
  backend, row counts per table, chain heads by thread id, the audit head, and the
  SHA-256 of ``payload.gpg``. No names, no content.
- ``manifest.json.sig``: the gateway's detached OpenPGP signature over the manifest.

``verify`` needs only public keys; ``restore`` needs the hospital's private key
(``--gnupghome``) and re-applies the deletions recorded after the backup was taken
(:mod:`.reapply`), so an old backup never brings deleted data back (I.7).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import gnupg  # type: ignore[import-untyped]  # python-gnupg ships no type hints
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from xmpp_clinic.clock import utcnow
from xmpp_clinic.retention.snapshot import Progress, consistent, counts, dump, load
from xmpp_clinic.settings.retention import BackupSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.audit import AuditHead
from xmpp_clinic.store.models.messages import ArchivedMessage
from xmpp_clinic.store.models.retention import ArchiveAnchor

FORMAT = "xmpp-clinic-backup"
VERSION = 1
SUFFIX = ".xcbackup"


class BackupError(Exception):
    """A backup that cannot be made, read, verified or restored; the text says why."""


@dataclass(frozen=True)
class Manifest:
    data: dict[str, Any]

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(str(self.data["created_at"]))


def gpg(home: Path, binary: str = "gpg") -> Any:
    """python-gnupg over the keyring at ``home`` (untyped library: Any at this edge)."""
    if not home.is_dir():
        raise BackupError(f"no GnuPG home at {home}")
    return gnupg.GPG(gnupghome=str(home), gpgbinary=binary)


async def chain_heads(conn: AsyncConnection) -> dict[str, Any]:
    """Thread chain heads (``seq:digest``) and anchors by thread id, and the audit head."""
    last = (
        select(ArchivedMessage.thread_id, func.max(ArchivedMessage.seq).label("seq"))
        .group_by(ArchivedMessage.thread_id)
        .subquery()
    )
    rows = await conn.execute(
        select(ArchivedMessage.thread_id, ArchivedMessage.seq, ArchivedMessage.digest).join(
            last,
            (last.c.thread_id == ArchivedMessage.thread_id) & (last.c.seq == ArchivedMessage.seq),
        )
    )
    heads = {str(t): f"{s}:{d.hex()}" for t, s, d in rows}
    anchors = {
        str(t): f"{s}:{d.hex()}"
        for t, s, d in await conn.execute(
            select(ArchiveAnchor.thread_id, ArchiveAnchor.seq, ArchiveAnchor.digest)
        )
    }
    head = (await conn.execute(select(AuditHead.seq, AuditHead.hash))).first()
    audit = f"{head[0]}:{head[1].hex()}" if head is not None else "0:" + "00" * 32
    return {"threads": heads, "anchors": anchors, "audit": audit}


async def create(
    store: Store, settings: BackupSettings, output: Path, progress: Progress | None = None
) -> Manifest:
    """Write an encrypted, signed backup of ``store`` to ``output`` while it runs (I.9)."""
    if not settings.recipients:
        raise BackupError("backup.recipients is empty: name the hospital keys to encrypt to")
    if settings.gnupghome is None:
        raise BackupError("backup.gnupghome is not set: the keyring with the recipients' keys")
    keys = gpg(settings.gnupghome, settings.gpg_binary)
    created = utcnow()
    async with consistent(store) as conn:
        table_counts = await counts(conn)
        heads = await chain_heads(conn)
        lines = [line async for line in dump(conn, progress)]
    payload = ("\n".join(lines) + "\n").encode()
    encrypted = keys.encrypt(
        payload, settings.recipients, sign=settings.signing_key or True,
        armor=False, always_trust=True,
    )  # fmt: skip
    if not encrypted.ok:
        raise BackupError(f"gpg could not encrypt and sign: {encrypted.status}")
    blob = bytes(encrypted.data)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": created.isoformat(),
        "backend": store.backend,
        "counts": table_counts,
        "heads": heads,
        "recipients": list(settings.recipients),
        "payload_sha256": hashlib.sha256(blob).hexdigest(),
    }
    body = json.dumps(manifest, indent=2, sort_keys=True).encode()
    signed = keys.sign(body, keyid=settings.signing_key, detach=True, binary=True)
    if not signed.data:
        raise BackupError(f"gpg could not sign the manifest: {signed.status}")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        for name, data in (("manifest.json", body), ("manifest.json.sig", bytes(signed.data)),
                           ("payload.gpg", blob)):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(created.timestamp()), 0o600
            tar.addfile(info, io.BytesIO(data))
    os.chmod(partial, 0o600)
    partial.replace(output)
    return Manifest(manifest)


def _members(path: Path) -> dict[str, bytes]:
    try:
        with tarfile.open(path, "r") as tar:
            found: dict[str, bytes] = {}
            for name in ("manifest.json", "manifest.json.sig", "payload.gpg"):
                member = tar.extractfile(name)
                if member is None:
                    raise KeyError(name)
                found[name] = member.read()
            return found
    except (OSError, tarfile.TarError, KeyError) as exc:
        raise BackupError(f"{path} is not an xmpp-clinic backup ({type(exc).__name__})") from None


def read_manifest(path: Path) -> Manifest:
    """The manifest, unverified (for ``prune``: dates only)."""
    return Manifest(json.loads(_members(path)["manifest.json"]))


def verify(path: Path, home: Path, binary: str = "gpg") -> tuple[Manifest, str]:
    """Check the manifest's signature and the payload's digest; public keys suffice (I.9).

    Returns the manifest and the signer's fingerprint.
    """
    parts = _members(path)
    keys = gpg(home, binary)
    with tempfile.NamedTemporaryFile(suffix=".sig") as sig:
        sig.write(parts["manifest.json.sig"])
        sig.flush()
        checked = keys.verify_data(sig.name, parts["manifest.json"])
    if not checked.valid:
        raise BackupError(f"the manifest signature does not verify ({checked.status})")
    manifest = Manifest(json.loads(parts["manifest.json"]))
    if manifest.data.get("format") != FORMAT:
        raise BackupError("not an xmpp-clinic backup manifest")
    if hashlib.sha256(parts["payload.gpg"]).hexdigest() != manifest.data["payload_sha256"]:
        raise BackupError("the encrypted payload does not match the manifest (changed or cut)")
    return manifest, str(checked.pubkey_fingerprint or checked.fingerprint)


def decrypt(path: Path, home: Path, binary: str = "gpg") -> tuple[Manifest, list[str]]:
    """Verify, then decrypt with the private key in ``home``; the payload's signer must be
    the manifest's signer."""
    manifest, signer = verify(path, home, binary)
    result = gpg(home, binary).decrypt(_members(path)["payload.gpg"])
    if not result.ok:
        raise BackupError(f"cannot decrypt: no private key for this backup here ({result.status})")
    payload_signer = str(result.pubkey_fingerprint or result.fingerprint or "")
    if not result.valid or payload_signer != signer:
        raise BackupError("the payload is not signed by the manifest's signer")
    return manifest, bytes(result.data).decode().splitlines()


async def restore(
    path: Path, store: Store, home: Path, binary: str = "gpg", progress: Progress | None = None
) -> tuple[Manifest, int]:
    """Load the backup into an empty ``store`` (migrated here); returns rows loaded."""
    manifest, lines = decrypt(path, home, binary)
    await store.migrate()
    loaded = await load(store, (line for line in lines if line), progress)
    async with store.engine.connect() as conn:
        if await chain_heads(conn) != manifest.data["heads"]:
            raise BackupError("restored chain heads differ from the manifest")
    return manifest, loaded


def prune(directory: Path, keep_days: int, now: datetime | None = None) -> list[Path]:
    """Delete backup files in ``directory`` older than ``keep_days`` (I.7): an old backup
    must not outlive the longest retention period."""
    limit = (now or utcnow()) - timedelta(days=keep_days)
    removed: list[Path] = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        try:
            created = read_manifest(path).created_at
        except (BackupError, ValueError, KeyError):
            continue  # not ours: never delete what we cannot date
        if created < limit:
            path.unlink()
            removed.append(path)
    return removed
