"""A photo shared in a documented thread, through the server's own HTTP upload (I.6, I.10).

A member shares a JPEG the XEP-0454 way: encrypted with AES-256-GCM, the ciphertext
uploaded through the server's XEP-0363 service (Prosody mod_http_file_share, ejabberd
mod_http_upload), the ``aesgcm://`` link sent inside OMEMO. The documentation member
fetches it from the allowed upload host and keeps it decrypted, without its EXIF (GPS,
camera), encrypted at rest: neither the photo nor the cleaned image is in the database.
"""

from __future__ import annotations

import asyncio
import io
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image
from slixmpp import ClientXMPP

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import connect_omemo_bot, join_thread
from tests.integration.conftest import PASSWORD
from tests.integration.test_records import Documenting, documenting, send_legacy  # noqa: F401
from tests.unit.test_records_attach import GPS_IFD, SECRET_MAKE, jpeg_with_gps
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.servers.upload import request_slot
from xmpp_clinic.records.aesgcm import encrypt
from xmpp_clinic.records.documentation import DocumentedMessage

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


async def share_file(
    bot: ClientXMPP, service: str, name: str, content: bytes, content_type: str
) -> tuple[str, str]:
    """What a client does to share a file in an OMEMO chat (XEP-0454 over XEP-0363):
    encrypt it, ask the upload service for a slot, PUT the ciphertext. The aesgcm link
    and the HTTP address it stands for."""
    ciphertext, fragment = encrypt(content, secrets.token_bytes(12), secrets.token_bytes(32))
    slot = await request_slot(bot, service, name, len(ciphertext), content_type)
    headers = slot.headers | {"Content-Type": content_type}
    async with httpx.AsyncClient(trust_env=False) as http:
        stored = await http.put(slot.put_url, content=ciphertext, headers=headers)
    assert stored.status_code in (200, 201), stored.status_code
    return "aesgcm://" + slot.get_url.split("://", 1)[1] + "#" + fragment, slot.get_url


def upload_host(link: str, scheme: str) -> str:
    """The ``[records] attachment_hosts`` entry that admits ``link``'s host."""
    parts = urlsplit(link)
    entry = f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
    return f"http://{entry}" if scheme == "http" else entry


async def wait_attachment(gw: Documenting, thread: str, timeout: float = 60) -> DocumentedMessage:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        copies = await gw.copies(thread)
        if copies and copies[-1].attachments and copies[-1].attachments[0].status != "pending":
            return copies[-1]
        assert asyncio.get_running_loop().time() < deadline, "attachment never fetched"
        await asyncio.sleep(0.2)


@pytest.mark.requirement("I.6", "I.10", "II.1")
async def test_photo_through_http_upload_is_documented_without_exif_encrypted_at_rest(
    xmpp_server: DevServer,
    make_users: Callable[..., list[str]],
    documenting: Callable[..., Documenting],  # noqa: F811
) -> None:
    anna, ben = make_users("anna", "ben")
    bot, ben_bot = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, xmpp_server) for u in (anna, ben))
    )
    try:
        photo = jpeg_with_gps()
        link, address = await share_file(
            bot, xmpp_server.upload_jid, "wound.jpg", photo, "image/jpeg"
        )
        allowed = upload_host(link, urlsplit(address).scheme)
        gw = documenting(records={"attachment_hosts": [allowed]})
        await gw.start()
        await gw.handle.acli("threads", "create", "wound", "--title", "Wound care",
                  "--member", anna, "--member", ben, "--documented")  # fmt: skip
        thread = f"wound@{gw.handle.jid}"
        await join_thread(bot, thread, "Anna")
        await send_legacy(bot, thread, f"Wound day 3 {link}", [ben, gw.part.jid])
        copy = await wait_attachment(gw, "wound")
        assert copy.body == f"Wound day 3 {link}"
        [file] = copy.attachments
        assert (file.status, file.name, file.media_type) == ("stored", "wound.jpg", "image/jpeg")
        assert gw.part.member is not None
        found = await gw.part.member.documentation.attachment("wound", copy.position, 1)
        assert found is not None
        _info, content = found
        with Image.open(io.BytesIO(content)) as image:
            assert image.size == (64, 48) and not image.getexif().get_ifd(GPS_IFD)
            assert not image.getexif()
        assert SECRET_MAKE.encode() not in content
        shown = (await gw.handle.acli("records", "show", "wound")).stdout
        assert "wound.jpg" in shown and f"sha256 {file.sha256}" in shown
        # Encrypted at rest: no 48-byte piece of the photo or of the cleaned image, in
        # the database file or its journal.
        for path in gw.database().parent.glob(gw.database().name + "*"):
            data = path.read_bytes()
            for image_bytes in (photo, content):
                for start in range(0, len(image_bytes) - 48, 48):
                    assert image_bytes[start : start + 48] not in data, path
            assert SECRET_MAKE.encode() not in data, path
    finally:
        await asyncio.gather(disconnect_bot(bot), disconnect_bot(ben_bot))
