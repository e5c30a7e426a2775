"""Encrypted backups with real GnuPG: create, verify, restore, re-apply, prune (I.9, I.7)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gnupg  # type: ignore[import-untyped]
import pytest

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.archive.messages import ArchiveEntry, ArchiveQuery, MessageArchive, NewMessage
from xmpp_clinic.retention import backup
from xmpp_clinic.retention.erasure import Eraser
from xmpp_clinic.retention.purge import Purger
from xmpp_clinic.retention.reapply import reapply
from xmpp_clinic.retention.receipts import ReceiptBook, read_folder
from xmpp_clinic.retention.snapshot import StoreNotEmpty
from xmpp_clinic.retention.threads import ThreadRetentionService
from xmpp_clinic.settings.retention import BackupSettings, RetentionSettings
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService

pytestmark = pytest.mark.requirement("I.9", "I.7")

ALICE = "alice@hospital.test"
SECRET_MARK = "CIPHERTEXT-MARK-7f3a"


@dataclass(frozen=True)
class Keys:
    gateway: Path  # gateway's signing key + hospital public key
    hospital: Path  # hospital's private key + gateway public key
    auditor: Path  # public keys only
    hospital_fpr: str


def _home(root: Path, name: str) -> tuple[Path, gnupg.GPG]:
    home = root / name
    home.mkdir(mode=0o700)
    return home, gnupg.GPG(gnupghome=str(home))


def _key(gpg: gnupg.GPG, email: str) -> str:
    spec = gpg.gen_key_input(
        key_type="EDDSA", key_curve="ed25519", key_usage="sign",
        subkey_type="ECDH", subkey_curve="cv25519", subkey_usage="encrypt",
        name_real="Test", name_email=email, expire_date=0, no_protection=True,
    )  # fmt: skip
    return str(gpg.gen_key(spec).fingerprint)


def stop_agents(*homes: Path) -> None:
    """Stop the gpg-agent (and any other daemon) GnuPG started for each throwaway home:
    they would otherwise outlive the test run, one per home."""
    for home in homes:
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, timeout=30
        )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    """Throwaway keys without passphrase (I.9): the hospital's and the gateway's."""
    root = tmp_path_factory.mktemp("gpg")
    gateway, g = _home(root, "g")
    hospital, h = _home(root, "h")
    auditor, a = _home(root, "a")
    try:
        gateway_fpr = _key(g, "gateway@clinic.test")
        hospital_fpr = _key(h, "backup@hospital.test")
        for source, fpr, targets in ((g, gateway_fpr, (h, a)), (h, hospital_fpr, (g, a))):
            public = source.export_keys(fpr)
            for target in targets:
                target.import_keys(public)
        yield Keys(gateway, hospital, auditor, hospital_fpr)
    finally:
        stop_agents(gateway, hospital, auditor)


def settings(keys: Keys) -> BackupSettings:
    return BackupSettings.model_validate(
        {"recipients": [keys.hospital_fpr], "gnupghome": str(keys.gateway)}
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'source.db'}")
    await store.migrate()
    yield store
    await store.close()


async def fill(store: Store, ages: list[int]) -> int:
    thread = await ThreadService(store, user_domains=["hospital.test"]).create(
        "ward", "Ward", [ALICE]
    )
    archive = MessageArchive(store)
    now = datetime.now(UTC)
    for n, age in enumerate(ages):
        await archive.append(
            NewMessage(thread.id, f"m{n}", now - timedelta(minutes=age), ALICE, "phone", "Alice",
                       "occ", f"<message id='m{n}'><payload>{SECRET_MARK}</payload></message>")
        )  # fmt: skip
    return thread.id


async def mam(store: Store, thread_id: int) -> list[ArchiveEntry]:
    return (await MessageArchive(store).query(ArchiveQuery(thread_id, limit=250))).entries


async def restored_matches(
    source: Store, target: Store, thread_id: int, *, same_audit: bool = True
) -> None:
    """audit verify passes, chain heads identical, the MAM page identical (I.9).

    After re-applied deletions the audit logs differ (each side recorded its own
    deletion events); the message chains do not.
    """
    assert (await AuditLog(target).verify()).intact
    assert await MessageArchive(target).verify(thread_id) is None
    async with source.engine.connect() as a, target.engine.connect() as b:
        heads_a, heads_b = await backup.chain_heads(a), await backup.chain_heads(b)
    if not same_audit:
        heads_a.pop("audit"), heads_b.pop("audit")
    assert heads_a == heads_b
    assert await mam(source, thread_id) == await mam(target, thread_id)


async def test_backup_restores_into_empty_sqlite(store: Store, keys: Keys, tmp_path: Path) -> None:
    ward = await fill(store, [3, 2, 1])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
    target = Store(f"sqlite+aiosqlite:///{tmp_path / 'target.db'}")
    try:
        _, rows = await backup.restore(file, target, keys.hospital)
        assert rows > 3
        await restored_matches(store, target, ward)
        # the restored store keeps working: a new message chains on
        await MessageArchive(target).append(
            NewMessage(ward, "new", datetime.now(UTC), ALICE, "", "Alice", "o", "<message/>")
        )
        assert await MessageArchive(target).verify(ward) is None
    finally:
        await target.close()


async def test_backup_restores_into_postgres(
    store: Store, keys: Keys, tmp_path: Path, pg_url: str
) -> None:
    ward = await fill(store, [3, 2, 1])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
    target = Store(pg_url)
    try:
        await backup.restore(file, target, keys.hospital)
        await restored_matches(store, target, ward)
        await ThreadService(target, user_domains=["hospital.test"]).create("icu", "ICU", [ALICE])
    finally:
        await target.close()


async def test_postgres_backup_restores_into_sqlite(
    keys: Keys, tmp_path: Path, pg_url: str
) -> None:
    source = Store(pg_url)
    target = Store(f"sqlite+aiosqlite:///{tmp_path / 'target.db'}")
    try:
        await source.migrate()
        ward = await fill(source, [2, 1])
        file = tmp_path / "pg.xcbackup"
        await backup.create(source, settings(keys), file)
        await backup.restore(file, target, keys.hospital)
        await restored_matches(source, target, ward)
    finally:
        await source.close()
        await target.close()


async def test_backup_verifies_with_public_keys_only(
    store: Store, keys: Keys, tmp_path: Path
) -> None:
    await fill(store, [1])
    file = tmp_path / "b.xcbackup"
    manifest = await backup.create(store, settings(keys), file)
    checked, _ = backup.verify(file, keys.auditor)
    assert checked.data == manifest.data
    assert file.stat().st_mode & 0o777 == 0o600


async def test_backup_is_unreadable_without_the_private_key(
    store: Store, keys: Keys, tmp_path: Path
) -> None:
    """I.9: neither the file nor the gateway's keyring reveals the content."""
    await fill(store, [1])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
    assert SECRET_MARK.encode() not in file.read_bytes()
    assert ALICE.encode() not in file.read_bytes()
    for home in (keys.gateway, keys.auditor):
        with pytest.raises(backup.BackupError, match="cannot decrypt"):
            backup.decrypt(file, home)


async def test_changed_backup_fails_verification(store: Store, keys: Keys, tmp_path: Path) -> None:
    await fill(store, [1])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
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
    with pytest.raises(backup.BackupError, match="does not match the manifest"):
        backup.verify(file, keys.auditor)


async def test_restore_refuses_a_store_with_content(
    store: Store, keys: Keys, tmp_path: Path
) -> None:
    await fill(store, [1])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
    with pytest.raises(StoreNotEmpty):
        await backup.restore(file, store, keys.hospital)


async def test_purges_after_the_backup_are_reapplied(
    store: Store, keys: Keys, tmp_path: Path
) -> None:
    """I.7 + I.9: an old backup does not bring purged messages or deleted threads back."""
    ward = await fill(store, [10, 8, 1])
    await ThreadService(store, user_domains=["hospital.test"]).create("icu", "ICU", [ALICE])
    file = tmp_path / "b.xcbackup"
    await backup.create(store, settings(keys), file)
    book = ReceiptBook(store, tmp_path / "key.pem", tmp_path / "receipts")
    await ThreadRetentionService(store).set_period("ward", 5, actor="cli:test")
    await Purger(store, RetentionSettings(), book).run(actor="cli:test", rule="manual")
    await Eraser(store, book).delete_thread("icu", actor="cli:test", settle=0)
    target = Store(f"sqlite+aiosqlite:///{tmp_path / 'target.db'}")
    try:
        manifest, _ = await backup.restore(file, target, keys.hospital)
        assert [e.stanza_id for e in await mam(target, ward)] == ["m0", "m1", "m2"]
        done = await reapply(
            target, read_folder(tmp_path / "receipts"), book.key.public_key(),
            ReceiptBook(target, tmp_path / "key.pem", None),
            since=manifest.created_at, actor="cli:restore",
        )  # fmt: skip
        assert (done.messages, done.threads) == (2, 1)
        assert [e.stanza_id for e in await mam(target, ward)] == ["m2"]
        names = [t.name for t in await ThreadService(target, user_domains=[]).list()]
        assert names == ["ward"]
        await restored_matches(store, target, ward, same_audit=False)
    finally:
        await target.close()


def test_prune_deletes_only_old_backups(keys: Keys, tmp_path: Path) -> None:
    async def make(name: str) -> Path:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / (name + '.db')}")
        try:
            await store.migrate()
            path = tmp_path / "backups" / f"{name}{backup.SUFFIX}"
            await backup.create(store, settings(keys), path)
            return path
        finally:
            await store.close()

    old, new = asyncio.run(make("old")), asyncio.run(make("new"))
    (tmp_path / "backups" / "notes.xcbackup").write_text("not a backup")
    later = datetime.now(UTC) + timedelta(days=31)
    assert backup.prune(tmp_path / "backups", 30, now=later) == [new, old]
    assert os.listdir(tmp_path / "backups") == ["notes.xcbackup"]


def test_backup_verbs_as_an_operator_runs_them(keys: Keys, tmp_path: Path) -> None:
    """create, verify (public keys), purge, restore (hospital key) re-applies, prune."""
    import tomli_w
    from typer.testing import CliRunner

    from xmpp_clinic.cli import app

    config = tmp_path / "clinic.toml"
    config.write_text(tomli_w.dumps({
        "xmpp": {"component_jid": "clinic.hospital.test", "secret": "s",
                 "user_domains": ["hospital.test"]},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"},
        "backup": {"directory": "backups", "gnupghome": str(keys.gateway),
                   "recipients": [keys.hospital_fpr]},
    }))  # fmt: skip

    async def seed() -> None:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
        try:
            await store.migrate()
            await fill(store, [10, 1])
        finally:
            await store.close()

    asyncio.run(seed())
    runner = CliRunner()

    def cli(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, [*args, "--config", str(config)])
        return result.exit_code, result.output

    file = tmp_path / "backups" / "clinic.xcbackup"
    code, out = cli("backup", "create", "--output", str(file))
    assert code == 0 and out.startswith(f"wrote {file}"), out
    code, out = cli("backup", "verify", str(file), "--gnupghome", str(keys.auditor))
    assert code == 0 and "valid" in out, out
    assert cli("threads", "set-retention", "ward", "--messages", "5m")[0] == 0
    assert cli("purge")[0] == 0
    target = f"sqlite+aiosqlite:///{tmp_path / 'restored.db'}"
    code, out = cli("backup", "restore", str(file), "--store", target,
                    "--gnupghome", str(keys.hospital))  # fmt: skip
    assert code == 0, out
    assert "re-applied 1 deletion receipt (1 messages" in out
    code, out = cli("backup", "restore", str(file), "--store", target,
                    "--gnupghome", str(keys.hospital))  # fmt: skip
    assert code == 2 and "empty store" in out
    code, out = cli("backup", "restore", str(file), "--store", target,
                    "--gnupghome", str(keys.gateway))  # fmt: skip
    assert code == 1 and "cannot decrypt" in out
    code, out = cli("backup", "prune")
    assert code == 0 and "deleted 0 files" in out


async def _backup_while_writing(source: Store, keys: Keys, tmp_path: Path) -> None:
    """Appends keep arriving while the backup runs; the snapshot is one point in time."""
    ward = await fill(source, [1])
    archive = MessageArchive(source)
    stop = asyncio.Event()

    async def talk() -> int:
        n = 0
        while not stop.is_set():
            await archive.append(
                NewMessage(ward, f"live-{n}", datetime.now(UTC), ALICE, "", "Alice", "o",
                           "<message/>")
            )  # fmt: skip
            n += 1
        return n

    writer = asyncio.ensure_future(talk())
    await asyncio.sleep(0.2)
    file = tmp_path / "online.xcbackup"
    manifest = await backup.create(source, settings(keys), file)
    await asyncio.sleep(0.2)
    stop.set()
    written = await writer
    target = Store(f"sqlite+aiosqlite:///{tmp_path / 'online-target.db'}")
    try:
        await backup.restore(file, target, keys.hospital)  # checks heads against the manifest
        assert await MessageArchive(target).verify(ward) is None
        restored = manifest.data["counts"]["thread_messages"]
        assert 1 < restored < written + 1  # some, not all: taken while writing
    finally:
        await target.close()


async def test_online_backup_of_sqlite_is_consistent(
    store: Store, keys: Keys, tmp_path: Path
) -> None:
    """I.9: a backup taken while the gateway appends restores to a chain that verifies."""
    await _backup_while_writing(store, keys, tmp_path)


async def test_online_backup_of_postgres_is_consistent(
    keys: Keys, tmp_path: Path, pg_url: str
) -> None:
    source = Store(pg_url)
    try:
        await source.migrate()
        await _backup_while_writing(source, keys, tmp_path)
    finally:
        await source.close()
