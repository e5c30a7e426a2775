"""XEP-0363 HTTP upload from a slixmpp client, for tests and the demo (development only).

slixmpp's own ``xep_0363`` plugin needs aiohttp, which this project does not install;
the two IQs it would send are small enough to write here: find the service in the
user domain's disco#items, and ask it for a slot. The PUT and GET are the caller's
(httpx), with the headers the slot names.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError, IqTimeout

UPLOAD_NS = "urn:xmpp:http:upload:0"
SLOT_TIMEOUT = 15.0
# Headers a slot may ask the client to send with its PUT (XEP-0363 section 5).
PUT_HEADERS = ("Authorization", "Cookie", "Expires")


class UploadError(RuntimeError):
    """No upload service was found, or its answer is not a usable slot."""


@dataclass(frozen=True)
class UploadSlot:
    """Where to PUT a file, with which headers, and where it can then be fetched."""

    put_url: str
    get_url: str
    headers: dict[str, str]


async def find_upload_service(
    bot: ClientXMPP, domain: str, *, timeout: float = SLOT_TIMEOUT
) -> str:
    """The JID among ``domain``'s disco#items that announces ``urn:xmpp:http:upload:0``."""
    disco: Any = bot.plugin["xep_0030"]  # slixmpp's plugins are untyped
    items = await disco.get_items(jid=JID(domain), timeout=timeout)
    for item in items["disco_items"]["items"]:
        jid = str(item[0])
        try:
            info = await disco.get_info(jid=JID(jid), timeout=timeout)
        except (IqError, IqTimeout):
            continue  # e.g. a component not connected: not the upload service
        if UPLOAD_NS in info["disco_info"]["features"]:
            return jid
    raise UploadError(f"no XEP-0363 upload service among the disco#items of {domain}")


async def request_slot(
    bot: ClientXMPP,
    service: str,
    filename: str,
    size: int,
    content_type: str = "application/octet-stream",
    *,
    timeout: float = SLOT_TIMEOUT,
) -> UploadSlot:
    """Ask ``service`` for a slot (raises slixmpp's ``IqError`` when it refuses)."""
    iq = bot.make_iq_get(ito=JID(service))
    ET.SubElement(
        iq.xml,
        f"{{{UPLOAD_NS}}}request",
        {"filename": filename, "size": str(size), "content-type": content_type},
    )
    send: Any = iq.send  # untyped
    reply = await send(timeout=timeout)
    slot = reply.xml.find(f"{{{UPLOAD_NS}}}slot")
    put = slot.find(f"{{{UPLOAD_NS}}}put") if slot is not None else None
    get = slot.find(f"{{{UPLOAD_NS}}}get") if slot is not None else None
    if put is None or get is None or not put.get("url") or not get.get("url"):
        raise UploadError(f"{service} answered the slot request without put and get URLs")
    headers = {
        header.get("name", ""): (header.text or "").strip()
        for header in put.findall(f"{{{UPLOAD_NS}}}header")
        if header.get("name") in PUT_HEADERS
    }
    return UploadSlot(put_url=put.get("url", ""), get_url=get.get("url", ""), headers=headers)
