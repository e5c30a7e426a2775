"""Documented attachments through the records gate and the CLI, and a message only the
records device could read (I.6, I.10, IV.4).

The gate stores the copy first and hands its links to the fetcher, which runs after the
verdict went back to the relay; ``records show`` lists the files and ``records
attachment`` exports one, both audited. A message encrypted for the records device
alone is refused with a sentence that names the fix, neither relayed nor documented.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.helpers.twomemo import Directory
from tests.unit.cli_store import write_config
from tests.unit.test_records_attach import HOST, Uploads, jpeg_with_gps, upload
from tests.unit.test_records_gate import ANNA, RECORDS, Inner, World, context, message, sent
from tests.unit.test_records_helpers import DirectoryAdapter, Sender, announce
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.cli import app
from xmpp_clinic.omemo import LEGACY, OMEMO2
from xmpp_clinic.policy.verdict import ReasonCode
from xmpp_clinic.records.documentation import Documentation
from xmpp_clinic.records.fetch import AttachmentFetcher
from xmpp_clinic.records.identity import RecordsDevice
from xmpp_clinic.records.keys import read_key
from xmpp_clinic.records.member import open_member
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.records_gate import ONLY_RECORDS_TEXT, RecordsGate

pytestmark = pytest.mark.requirement("I.6")


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The records device and documentation of test_records_gate, for these tests."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    directory = Directory()
    key_file = tmp_path / "records-key"
    device, _ = await RecordsDevice.open(store, key_file, RECORDS, DirectoryAdapter(directory))
    await announce(device, directory)
    yield World(store, device, Documentation(store, read_key(key_file)), directory, tmp_path)
    await device.close()
    await store.close()


def fetcher(world: World, uploads: Uploads) -> AttachmentFetcher:
    settings = RecordsSettings(attachment_hosts=[HOST])
    return AttachmentFetcher(world.documentation, settings, uploads.transport())


@pytest.mark.parametrize("version", [LEGACY, OMEMO2], ids=["legacy", "omemo2"])
async def test_a_photo_link_is_fetched_after_the_verdict(world: World, version: object) -> None:
    uploads = Uploads()
    ciphertext, url = upload(jpeg_with_gps())
    uploads.files["/share/abc/wound.jpg"] = ciphertext
    files = fetcher(world, uploads)
    gate = RecordsGate(Inner(), world.device, world.documentation, files)
    anna = await Sender.create(ANNA, version, world.directory)  # type: ignore[arg-type]
    verdict = await sent(world, gate, anna, f"Wound day 3 {url}", "m1")
    assert not verdict.rejected
    await files.drain()
    await files.close()
    [copy] = await world.documentation.read("icu-1")
    [file] = copy.attachments
    assert (file.status, file.media_type, file.metadata_removed) == ("stored", "image/jpeg", True)
    assert len(uploads.requests) == 1 and uploads.requests[0].url.scheme == "https"


async def test_the_verdict_does_not_wait_for_the_fetch(world: World) -> None:
    release = asyncio.Event()
    ciphertext, url = upload(jpeg_with_gps())

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()  # the upload service hangs until the test says so
        return httpx.Response(200, content=ciphertext)

    settings = RecordsSettings(attachment_hosts=[HOST])
    files = AttachmentFetcher(world.documentation, settings, httpx.MockTransport(slow))
    gate = RecordsGate(Inner(), world.device, world.documentation, files)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    verdict = await asyncio.wait_for(sent(world, gate, anna, url, "m1"), 20)
    assert not verdict.rejected  # relayed while the upload service still hangs
    [copy] = await world.documentation.read("icu-1")
    assert [f.status for f in copy.attachments] == ["pending"]
    release.set()
    await files.drain()
    await files.close()
    [copy] = await world.documentation.read("icu-1")
    assert [f.status for f in copy.attachments] == ["stored"]


async def test_a_hanging_upload_service_is_a_timeout_gap(world: World) -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(30)
        return httpx.Response(200)

    settings = RecordsSettings(attachment_hosts=[HOST], attachment_timeout_seconds=0.2)
    files = AttachmentFetcher(world.documentation, settings, httpx.MockTransport(hang))
    _, url = upload(b"x")
    assert await asyncio.wait_for(files.fetch(url), 10) == "fetch-timeout"
    await files.close()


async def test_a_failed_fetch_never_costs_the_message(world: World) -> None:
    files = fetcher(world, Uploads())  # the upload service has no such file
    gate = RecordsGate(Inner(), world.device, world.documentation, files)
    anna = await Sender.create(ANNA, LEGACY, world.directory)
    _, url = upload(b"x")
    assert not (await sent(world, gate, anna, url, "m1")).rejected
    await files.drain()
    await files.close()
    [copy] = await world.documentation.read("icu-1")
    assert copy.body == url
    assert [(f.status, f.reason) for f in copy.attachments] == [("gap", "fetch-failed (HTTP 404)")]


@pytest.mark.parametrize("version", [LEGACY, OMEMO2], ids=["legacy", "omemo2"])
async def test_message_only_for_the_records_device_is_refused_naming_the_fix(
    world: World, version: object
) -> None:
    inner = Inner()
    gate = RecordsGate(inner, world.device, world.documentation)
    anna = await Sender.create(ANNA, version, world.directory)  # type: ignore[arg-type]
    element = await anna.encrypt("Only the record would read this", [RECORDS])
    verdict = await gate.evaluate(context(ANNA, message(ANNA, element, "m1")))
    assert verdict.rejected and verdict.reason is ReasonCode.NO_APPROVED_RECIPIENT
    assert verdict.text == ONLY_RECORDS_TEXT
    assert "documentation service" in verdict.text and "send it again" in verdict.text
    assert inner.seen == []  # not relayed
    assert await world.documentation.read("icu-1") == []  # not documented


# ------------------------------------------------------------------------- CLI
def document_photo(folder: Path) -> bytes:
    """A documented message with a photo, fetched; the photo's original bytes."""
    photo = jpeg_with_gps()

    async def go() -> None:
        store = Store(f"sqlite+aiosqlite:///{folder / 'clinic.db'}")
        await store.migrate()
        directory = Directory()
        settings = RecordsSettings(key_file=folder / "records-key", attachment_hosts=[HOST])
        member = await open_member(
            store, settings, "clinic.hospital.test", DirectoryAdapter(directory)
        )
        await announce(member.device, directory)
        uploads = Uploads()
        ciphertext, url = upload(photo)
        uploads.files["/share/abc/wound.jpg"] = ciphertext
        files = AttachmentFetcher(member.documentation, settings, uploads.transport())
        gate = RecordsGate(Inner(), member.device, member.documentation, files)
        here = World(store, member.device, member.documentation, directory, folder)
        await sent(here, gate, await Sender.create(ANNA, LEGACY, directory), url, "m1")
        await files.drain()
        await files.close()
        await member.device.close()
        await store.close()

    asyncio.run(go())
    return photo


def cli(folder: Path, *args: str) -> tuple[int, str, str]:
    config = folder / "clinic.toml"
    result = CliRunner().invoke(app, ["records", *args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.requirement("I.6", "I.10", "IV.4")
def test_show_lists_attachments_and_one_is_exported_audited(tmp_path: Path) -> None:
    write_config(tmp_path, user_domains=["hospital.test"])
    photo = document_photo(tmp_path)
    code, out, _ = cli(tmp_path, "show", "icu-1")
    assert code == 0
    [_message, listed] = out.splitlines()
    assert "wound.jpg" in listed and "image/jpeg" in listed and "sha256 " in listed
    assert "records attachment icu-1 1 --number 1" in listed
    code, out, _ = cli(tmp_path, "show", "icu-1", "--json")
    [shown] = json.loads(out)
    [file] = shown["attachments"]
    assert (file["name"], file["status"], file["media_type"]) == (
        "wound.jpg",
        "stored",
        "image/jpeg",
    )
    assert file["metadata_removed"] is True and len(file["sha256"]) == 64
    target = tmp_path / "out.jpg"
    code, out, _ = cli(tmp_path, "attachment", "icu-1", "1", "--output", str(target))
    assert code == 0, out
    exported = target.read_bytes()
    assert exported != photo and exported.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(exported)) as image:
        assert not image.getexif()
    assert target.stat().st_mode & 0o777 == 0o600
    code, _, err = cli(tmp_path, "attachment", "icu-1", "1", "--output", str(target))
    assert code == 2 and "exists" in err  # never overwritten
    code, _, _ = cli(tmp_path, "attachment", "icu-1", "1", "--number", "2", "-o", "x")
    assert code == 1

    async def reads() -> list[str]:
        store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
        try:
            events = await AuditLog(store).events(subject="icu-1")
        finally:
            await store.close()
        return [e.reason for e in events if e.action == "records.read"]

    assert asyncio.run(reads()).count("attachment") == 3
