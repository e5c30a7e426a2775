"""The report's backup evidence: the newest backup, verified now with public keys (I.9)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from tests.unit.test_retention_backup import Keys, settings
from tests.unit.test_retention_backup import keys as keys  # the GnuPG keys fixture
from xmpp_clinic.report.backups import backup_facts
from xmpp_clinic.retention import backup
from xmpp_clinic.settings.retention import BackupSettings
from xmpp_clinic.store import Store


def folder_settings(found: Keys, folder: Path) -> BackupSettings:
    """Backups in ``folder``, verified with the auditor's public keys only."""
    return BackupSettings.model_validate(
        {
            "directory": str(folder),
            "recipients": [found.hospital_fpr],
            "gnupghome": str(found.auditor),
        }
    )


def flip_payload_byte(file: Path) -> None:
    with tarfile.open(file) as tar:
        parts = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    payload = bytearray(parts["payload.gpg"])
    payload[len(payload) // 2] ^= 0x01
    parts["payload.gpg"] = bytes(payload)
    with tarfile.open(file, "w") as tar:
        for name, data in parts.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.requirement("I.9")
async def test_newest_backup_is_verified_now_and_a_changed_one_fails(
    keys: Keys, tmp_path: Path
) -> None:
    folder = tmp_path / "backups"
    folder.mkdir()
    assert (await backup_facts(folder_settings(keys, folder))).last_backup == "never"
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    try:
        await store.migrate()
        manifest = await backup.create(store, settings(keys), folder / "b1.xcbackup")
    finally:
        await store.close()
    found = await backup_facts(folder_settings(keys, folder))
    assert found.last_backup == manifest.created_at.isoformat()
    assert found.verified is not None and found.verified.startswith("verified now (b1.xcbackup")
    flip_payload_byte(folder / "b1.xcbackup")
    broken = await backup_facts(folder_settings(keys, folder))
    assert broken.verified is not None and broken.verified.startswith("FAILED")


async def test_without_a_backup_folder_the_fact_is_not_available() -> None:
    found = await backup_facts(BackupSettings())
    assert (found.last_backup, found.verified) == (None, None)
