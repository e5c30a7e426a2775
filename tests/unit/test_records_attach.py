"""Documented attachments: fetched only from allowed hosts, decrypted, checked, cleaned
of EXIF/GPS, stored encrypted and chained to their copy (I.6, I.10, I.12).

The upload service is an httpx mock transport serving the ciphertext a client would
upload (XEP-0454); the images are made with Pillow, with a GPS position in their EXIF.
"""

from __future__ import annotations

import io
import secrets
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from PIL import Image

from xmpp_clinic.records.aesgcm import AttachmentRefused, decrypt, encrypt, find_links, parse_link
from xmpp_clinic.records.documentation import Content, Documentation, DocumentationError, NewCopy
from xmpp_clinic.records.fetch import AttachmentFetcher
from xmpp_clinic.records.keys import create_key
from xmpp_clinic.records.vetting import vet
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import Store

pytestmark = pytest.mark.requirement("I.6", "I.10")

HOST = "upload.hospital.test"
GPS_IFD = 0x8825
SECRET_MAKE = "ClinicCam-SECRET-MODEL"


def jpeg_with_gps() -> bytes:
    """A JPEG photo whose EXIF says where and with what it was taken."""
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    exif = Image.Exif()
    exif[0x010F] = SECRET_MAKE  # Make
    exif[0x0112] = 1  # Orientation
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 36.0)})
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def upload(plain: bytes, iv_size: int = 12) -> tuple[bytes, str]:
    """What a client uploads and the link it sends."""
    ciphertext, fragment = encrypt(plain, secrets.token_bytes(iv_size), secrets.token_bytes(32))
    return ciphertext, f"aesgcm://{HOST}/share/abc/wound.jpg#{fragment}"


class Uploads:
    """The hospital's upload service: path -> ciphertext; remembers every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = self.files.get(request.url.path)
        return httpx.Response(200, content=body) if body is not None else httpx.Response(404)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)


def fetcher_for(
    documentation: Documentation, uploads: Uploads, **settings: object
) -> AttachmentFetcher:
    options: dict[str, object] = {"attachment_hosts": [HOST]} | settings
    return AttachmentFetcher(
        documentation, RecordsSettings.model_validate(options), uploads.transport()
    )


# --------------------------------------------------------------------- pure parts
def test_exif_and_gps_are_removed_from_images() -> None:
    photo = jpeg_with_gps()
    with Image.open(io.BytesIO(photo)) as before:
        assert before.getexif().get_ifd(GPS_IFD)  # the test image really has a position
    cleaned = vet(photo, ["image/jpeg"], 10_000_000)
    assert cleaned.media_type == "image/jpeg" and cleaned.stripped
    with Image.open(io.BytesIO(cleaned.content)) as after:
        assert after.format == "JPEG" and after.size == (64, 48)
        assert not after.getexif() and "exif" not in after.info
    assert b"Exif" not in cleaned.content and SECRET_MAKE.encode() not in cleaned.content


def test_png_text_and_exif_are_removed() -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "patient Jane Doe, bed 4")
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PNG", pnginfo=info)
    cleaned = vet(out.getvalue(), ["image/png"], 10_000_000)
    assert b"Jane Doe" not in cleaned.content and cleaned.media_type == "image/png"


def test_type_is_sniffed_not_believed() -> None:
    with pytest.raises(AttachmentRefused) as refused:
        vet(b"MZ\x90\x00 an executable named wound.jpg", ["image/jpeg"], 10_000)
    assert refused.value.reason == "type-not-allowed"
    with pytest.raises(AttachmentRefused) as refused:
        vet(jpeg_with_gps(), ["application/pdf"], 10_000_000)  # JPEG not on the list
    assert refused.value.reason == "type-not-allowed"
    assert vet(b"%PDF-1.7\n...", ["application/pdf"], 10_000).media_type == "application/pdf"


def test_oversize_is_refused() -> None:
    with pytest.raises(AttachmentRefused) as refused:
        vet(jpeg_with_gps(), ["image/jpeg"], 100)
    assert refused.value.reason == "too-large"


@pytest.mark.parametrize("iv_size", [12, 16])
def test_both_iv_sizes_decrypt(iv_size: int) -> None:
    ciphertext, url = upload(b"the file", iv_size)
    link = parse_link(url)
    assert (link.host, link.name, len(link.iv)) == (HOST, "wound.jpg", iv_size)
    assert decrypt(link, ciphertext) == b"the file"
    assert "#" not in repr(link) and link.key.hex() not in repr(link)


def test_bad_key_or_tag_is_refused() -> None:
    ciphertext, url = upload(b"the file")
    other = url[:-64] + secrets.token_bytes(32).hex()  # same IV, another key
    with pytest.raises(AttachmentRefused) as refused:
        decrypt(parse_link(other), ciphertext)
    assert refused.value.reason == "undecryptable"
    altered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])  # the tag changed
    with pytest.raises(AttachmentRefused) as refused:
        decrypt(parse_link(url), altered)
    assert refused.value.reason == "undecryptable"
    for bad in (url.split("#")[0], url + "00", url.replace("#", "#zz"), "https://x/y#00"):
        with pytest.raises(AttachmentRefused) as refused:
            parse_link(bad)
        assert refused.value.reason == "bad-link"


def test_links_are_found_in_text() -> None:
    text = "Wound, see aesgcm://h/a.jpg#00 and (aesgcm://h/b.png#11). again aesgcm://h/a.jpg#00"
    assert find_links(text) == ["aesgcm://h/a.jpg#00", "aesgcm://h/b.png#11"]


# ----------------------------------------------------------- through the store
@pytest.fixture
async def documentation(tmp_path: Path) -> AsyncIterator[Documentation]:
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}")
    await store.migrate()
    yield Documentation(store, create_key(tmp_path / "records-key"))
    await store.close()


async def documented(documentation: Documentation, body: str) -> int:
    copy = NewCopy("icu-1", datetime.now(UTC), "anna@hospital.test", "m1", Content(body))
    return await documentation.append(copy)


async def test_attachment_is_stored_decrypted_clean_and_encrypted_at_rest(
    documentation: Documentation, tmp_path: Path
) -> None:
    uploads = Uploads()
    photo = jpeg_with_gps()
    ciphertext, url = upload(photo)
    uploads.files["/share/abc/wound.jpg"] = ciphertext
    position = await documented(documentation, f"Wound day 3 {url}")
    [copy] = await documentation.read("icu-1")
    assert [f.status for f in copy.attachments] == ["pending"]  # recorded with the copy
    fetcher = fetcher_for(documentation, uploads)
    fetcher.schedule("icu-1", position)
    await fetcher.drain()
    await fetcher.close()
    [copy] = await documentation.read("icu-1")
    [file] = copy.attachments
    assert (file.status, file.name, file.media_type) == ("stored", "wound.jpg", "image/jpeg")
    assert file.source == f"https://{HOST}/share/abc/wound.jpg"  # never the key
    found = await documentation.attachment("icu-1", position, 1)
    assert found is not None
    info, content = found
    assert info.size == len(content) and info.metadata_removed
    with Image.open(io.BytesIO(content)) as image:
        assert not image.getexif() and image.size == (64, 48)
    database = (tmp_path / "clinic.db").read_bytes()
    assert photo[200:264] not in database and content[200:264] not in database
    assert SECRET_MAKE.encode() not in database and url.split("#")[1].encode() not in database


async def test_host_not_in_allowlist_is_a_gap_and_not_contacted(
    documentation: Documentation,
) -> None:
    uploads = Uploads()
    ciphertext, url = upload(jpeg_with_gps())
    uploads.files["/share/abc/wound.jpg"] = ciphertext
    position = await documented(documentation, url.replace(HOST, "files.example.com"))
    nowhere = fetcher_for(documentation, uploads, attachment_hosts=[])
    for fetcher in (fetcher_for(documentation, uploads), nowhere):
        assert await fetcher.fetch(url.replace(HOST, "files.example.com")) == "host-not-allowed"
    fetcher = fetcher_for(documentation, uploads, attachment_hosts=[])
    fetcher.schedule("icu-1", position)
    await fetcher.drain()
    assert uploads.requests == []
    [copy] = await documentation.read("icu-1")
    assert [(f.status, f.reason) for f in copy.attachments] == [("gap", "host-not-allowed")]
    assert copy.body.startswith("aesgcm://")  # the message itself is documented


async def test_failed_fetches_are_gaps_with_their_reason(documentation: Documentation) -> None:
    uploads = Uploads()
    big, big_url = upload(jpeg_with_gps())
    uploads.files["/share/abc/wound.jpg"] = big
    fetcher = fetcher_for(documentation, uploads, max_attachment_bytes=100)
    assert await fetcher.fetch(big_url) == "too-large"
    fetcher = fetcher_for(documentation, uploads)
    assert await fetcher.fetch(big_url.replace("wound", "gone")) == "fetch-failed (HTTP 404)"
    wrong = big_url[:-64] + secrets.token_bytes(32).hex()
    assert await fetcher.fetch(wrong) == "undecryptable"
    assert await fetcher.fetch("aesgcm://upload.hospital.test/x#abc") == "bad-link"
    await fetcher.close()


async def test_an_attachment_row_removed_or_altered_is_found(
    documentation: Documentation, tmp_path: Path
) -> None:
    _, url = upload(b"x")
    await documented(documentation, url)
    db = sqlite3.connect(tmp_path / "clinic.db")
    db.execute("update documentation_attachments set status = 'gap'")
    db.commit()
    with pytest.raises(DocumentationError, match="altered"):
        await documentation.read("icu-1")
    db.execute("delete from documentation_attachments")
    db.commit()
    db.close()
    with pytest.raises(DocumentationError, match="missing"):
        await documentation.read("icu-1")


async def test_pending_attachments_are_fetched_at_the_next_start(
    documentation: Documentation,
) -> None:
    uploads = Uploads()
    ciphertext, url = upload(jpeg_with_gps())
    uploads.files["/share/abc/wound.jpg"] = ciphertext
    await documented(documentation, url)  # the gateway stopped before fetching
    fetcher = fetcher_for(documentation, uploads)
    assert await fetcher.resume() == 1
    await fetcher.drain()
    await fetcher.close()
    [copy] = await documentation.read("icu-1")
    assert [f.status for f in copy.attachments] == ["stored"]
    assert await documentation.pending_attachments() == []


async def test_purge_takes_attachments_with_their_copies(
    documentation: Documentation, tmp_path: Path
) -> None:
    _, url = upload(b"x")
    await documented(documentation, url)
    assert await documentation.purge(datetime.now(UTC)) == 1
    db = sqlite3.connect(tmp_path / "clinic.db")
    assert db.execute("select count(*) from documentation_attachments").fetchone() == (0,)
    db.close()


@pytest.mark.requirement("I.7")
async def test_retention_range_purge_takes_the_attachments_of_purged_copies(
    documentation: Documentation, tmp_path: Path
) -> None:
    """Retention deletes copies 1..n of a thread; their attachments (keyed by thread and
    position) go in the same range, the later ones stay and still verify."""
    from xmpp_clinic.retention.linked import purge_documentation

    for _ in range(3):
        _, url = upload(b"x")
        await documented(documentation, url)
    purged = await purge_documentation(documentation._store, "icu-1", 2, batch=10)
    assert purged is not None and (purged.first, purged.last) == (1, 2)
    [left] = await documentation.read("icu-1")
    assert left.position == 3 and [f.number for f in left.attachments] == [1]
    db = sqlite3.connect(tmp_path / "clinic.db")
    assert db.execute("select position from documentation_attachments").fetchall() == [(3,)]
    db.close()


@pytest.mark.requirement("I.7", "II.3")
async def test_attachments_still_verify_after_an_erasure_relinks_the_chain(
    documentation: Documentation,
) -> None:
    """``erase --person`` puts a pseudonym in the copies' sender and re-links the chain:
    the attachments are bound to their copy's sealed content, which does not change."""
    from xmpp_clinic.retention.person import pseudonymise_documentation
    from xmpp_clinic.retention.scrub import scrubber

    uploads = Uploads()
    ciphertext, url = upload(jpeg_with_gps())
    uploads.files["/share/abc/wound.jpg"] = ciphertext
    position = await documented(documentation, url)
    fetcher = fetcher_for(documentation, uploads)
    fetcher.schedule("icu-1", position)
    await fetcher.drain()
    await fetcher.close()
    async with documentation._store.session() as session:
        changed = await pseudonymise_documentation(
            session, "anna@hospital.test", scrubber("anna@hospital.test", "person-1")
        )
    assert changed and changed[0]["positions"] == [position]
    [copy] = await documentation.read("icu-1")
    assert copy.sender != "anna@hospital.test"
    assert [f.status for f in copy.attachments] == ["stored"]
    assert await documentation.attachment("icu-1", position, 1) is not None
