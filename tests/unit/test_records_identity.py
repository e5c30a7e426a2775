"""The records device's identity: created once, kept sealed in the store, decrypts both
OMEMO versions, survives a restart, and refuses to start without its key (I.6, II.1)."""

from __future__ import annotations

import sqlite3
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from omemo.session_manager import MessageNotForUs

from tests.helpers.twomemo import Directory, body_of
from tests.unit.test_records_helpers import DirectoryAdapter, Sender, announce
from xmpp_clinic.omemo import LEGACY, LEGACY_NS, OMEMO2, OMEMO2_NS
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.records.keys import RecordsKeyError
from xmpp_clinic.store import Store

pytestmark = pytest.mark.requirement("I.6", "II.1")

RECORDS = "records@clinic.hospital.test"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield store
    await store.close()


async def open_device(store: Store, key: Path, directory: Directory) -> RecordsDevice:
    device, _created = await RecordsDevice.open(store, key, RECORDS, DirectoryAdapter(directory))
    return device


async def test_first_start_creates_the_key_file_0600(store: Store, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "records-key"
    device, created = await RecordsDevice.open(store, key, RECORDS, DirectoryAdapter(Directory()))
    assert created
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == 32
    await device.close()


async def test_both_versions_are_published_with_one_device_id(store: Store, tmp_path: Path) -> None:
    device = await open_device(store, tmp_path / "k", Directory())
    device_id = await device.device_id()
    legacy = await device.device_list(LEGACY)
    assert legacy.tag == f"{{{LEGACY_NS}}}list"
    assert [d.get("id") for d in legacy] == [str(device_id)]
    two = await device.device_list(OMEMO2)
    assert two.tag == f"{{{OMEMO2_NS}}}devices"
    assert [d.get("id") for d in two] == [str(device_id)]
    bundle = await device.bundle(LEGACY)
    assert len(bundle.findall(f"{{{LEGACY_NS}}}prekeys/{{{LEGACY_NS}}}preKeyPublic")) == 100
    await device.close()


async def test_legacy_and_omemo2_messages_decrypt(store: Store, tmp_path: Path) -> None:
    directory = Directory()
    device = await open_device(store, tmp_path / "k", directory)
    await announce(device, directory)
    anna = await Sender.create("anna@hospital.test", LEGACY, directory)
    kai = await Sender.create("kai@hospital.test", OMEMO2, directory)
    legacy = await anna.encrypt("BP 120/80", [RECORDS])
    assert await device.decrypt(LEGACY, legacy, anna.jid) == b"BP 120/80"
    two = await kai.encrypt("Pulse 64", [RECORDS])
    assert body_of(await device.decrypt(OMEMO2, two, kai.jid) or b"") == "Pulse 64"
    await device.close()


async def test_used_pre_key_is_no_longer_offered(store: Store, tmp_path: Path) -> None:
    directory = Directory()
    device = await open_device(store, tmp_path / "k", directory)
    await announce(device, directory)
    before = {k.get("preKeyId") for k in (await device.bundle(LEGACY)).iter() if k.get("preKeyId")}
    anna = await Sender.create("anna@hospital.test", LEGACY, directory)
    await device.decrypt(LEGACY, await anna.encrypt("one", [RECORDS]), anna.jid)
    after = {k.get("preKeyId") for k in (await device.bundle(LEGACY)).iter() if k.get("preKeyId")}
    assert len(before - after) == 1  # used once, gone; refilled to a full set
    assert len(after) == 100


async def test_sessions_survive_a_restart(store: Store, tmp_path: Path) -> None:
    directory = Directory()
    key = tmp_path / "k"
    device = await open_device(store, key, directory)
    await announce(device, directory)
    device_id = await device.device_id()
    anna = await Sender.create("anna@hospital.test", LEGACY, directory)
    await device.decrypt(LEGACY, await anna.encrypt("before", [RECORDS]), anna.jid)
    await device.close()
    again = await open_device(store, key, directory)
    assert await again.device_id() == device_id
    for text in ("after one", "after two"):
        element = await anna.encrypt(text, [RECORDS])
        assert await again.decrypt(LEGACY, element, anna.jid) == text.encode()
    await again.close()


async def test_lost_key_file_refuses_to_start_naming_the_key(store: Store, tmp_path: Path) -> None:
    key = tmp_path / "records-key"
    device = await open_device(store, key, Directory())
    await device.close()
    key.unlink()
    with pytest.raises(RecordsKeyError) as refused:
        await open_device(store, key, Directory())
    assert "[records] key_file" in str(refused.value)
    assert str(key) in str(refused.value)
    assert not key.exists()  # no new key was made in its place


async def test_message_without_our_key_is_not_for_us(store: Store, tmp_path: Path) -> None:
    directory = Directory()
    device = await open_device(store, tmp_path / "k", directory)
    await announce(device, directory)
    anna = await Sender.create("anna@hospital.test", OMEMO2, directory)
    bob = await Sender.create("bob@hospital.test", OMEMO2, directory)
    del bob
    element = await anna.encrypt("not for records", ["bob@hospital.test"])
    with pytest.raises(MessageNotForUs):
        await device.decrypt(OMEMO2, element, anna.jid)
    await device.close()


async def test_the_store_holds_no_key_material_in_the_clear(store: Store, tmp_path: Path) -> None:
    directory = Directory()
    device = await open_device(store, tmp_path / "k", directory)
    await announce(device, directory)
    anna = await Sender.create("anna@hospital.test", LEGACY, directory)
    await device.decrypt(LEGACY, await anna.encrypt("x", [RECORDS]), anna.jid)
    own, _ = await device.manager.get_own_device_information()
    await device.close()
    await store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("clinic.db*"))
    assert own.identity_key not in raw
    assert b"anna@hospital.test" not in raw  # storage names are HMACs
    rows = (
        sqlite3.connect(tmp_path / "clinic.db").execute("select key from records_state").fetchall()
    )
    assert rows  # the state is there, keyed by name, valued by ciphertext only
