"""``xmpp-clinic records show``: what was written, in order, with sender and time;
every read audited; a lost key named (I.6, IV.4)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers.twomemo import Directory
from tests.unit.cli_store import write_config
from tests.unit.test_records_gate import ANNA, KAI, RECORDS, Inner, World, sent
from tests.unit.test_records_helpers import DirectoryAdapter, Sender, announce
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.cli import app
from xmpp_clinic.omemo import LEGACY, OMEMO2
from xmpp_clinic.records.member import open_member
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.records_gate import RecordsGate


def document(folder: Path) -> None:
    """Three messages of a documented thread, through the gate, into folder/clinic.db."""

    async def go() -> None:
        store = Store(f"sqlite+aiosqlite:///{folder / 'clinic.db'}")
        await store.migrate()
        directory = Directory()
        settings = RecordsSettings(key_file=folder / "records-key")
        member = await open_member(
            store, settings, "clinic.hospital.test", DirectoryAdapter(directory)
        )
        assert member.jid == RECORDS and member.key_created
        await announce(member.device, directory)
        world = World(store, member.device, member.documentation, directory, folder)
        gate = RecordsGate(Inner(), member.device, member.documentation)
        anna = await Sender.create(ANNA, LEGACY, directory)
        kai = await Sender.create(KAI, OMEMO2, directory)
        await sent(world, gate, anna, "BP 120/80", "m1")
        await sent(world, gate, kai, "Pulse 64", "m2")
        await sent(world, gate, anna, "Started heparin", "m3")
        await member.device.close()
        await store.close()

    asyncio.run(go())


@pytest.fixture(scope="module")
def documented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("documented")
    write_config(folder, user_domains=["hospital.test"])
    document(folder)
    return folder


def cli(folder: Path, *args: str) -> tuple[int, str, str]:
    config = folder / "clinic.toml"
    result = CliRunner().invoke(app, ["records", *args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.requirement("I.6")
def test_show_prints_what_was_written_in_order(documented: Path) -> None:
    code, out, _ = cli(documented, "show", "icu-1")
    assert code == 0
    lines = [line.split("\t") for line in out.splitlines()]
    assert [(who, text) for _when, who, text in lines] == [
        (ANNA, "BP 120/80"),
        (KAI, "Pulse 64"),
        (ANNA, "Started heparin"),
    ]
    assert all(when.endswith("Z") and when[:4].isdigit() for when, _, _ in lines)


@pytest.mark.requirement("I.6")
def test_show_json_and_a_time_window(documented: Path) -> None:
    code, out, _ = cli(documented, "show", "icu-1", "--json")
    assert code == 0
    copies = json.loads(out)
    assert [c["position"] for c in copies] == [1, 2, 3]
    _, out, _ = cli(documented, "show", "icu-1", "--json", "--since", copies[1]["at"])
    assert [c["body"] for c in json.loads(out)] == ["Pulse 64", "Started heparin"]
    _, out, _ = cli(documented, "show", "icu-1", "--json", "--until", copies[1]["at"])
    assert [c["body"] for c in json.loads(out)] == ["BP 120/80"]


@pytest.mark.requirement("I.6", "IV.4")
def test_every_read_is_audited(documented: Path) -> None:
    cli(documented, "show", "icu-1")

    async def reads() -> list[str]:
        store = Store(f"sqlite+aiosqlite:///{documented / 'clinic.db'}")
        try:
            events = await AuditLog(store).events(subject="icu-1")
        finally:
            await store.close()
        return [e.actor for e in events if e.action == "records.read"]

    assert asyncio.run(reads())  # at least this read, by the person running the CLI


@pytest.mark.requirement("I.6")
def test_lost_key_file_is_named(documented: Path, tmp_path: Path) -> None:
    key = documented / "records-key"
    kept = tmp_path / "kept"
    key.rename(kept)
    try:
        code, _, err = cli(documented, "show", "icu-1")
    finally:
        kept.rename(key)
    assert code == 2
    assert "[records] key_file" in err and "records-key" in err


@pytest.mark.requirement("I.6")
def test_bad_time_is_bad_usage(documented: Path) -> None:
    code, _, _ = cli(documented, "show", "icu-1", "--since", "yesterday")
    assert code == 2
