"""End-to-end encryption is required in care threads (II.1).

A message that carries content must carry it inside OMEMO. Content outside OMEMO is a
body, a subject, XHTML-IM, an out-of-band link, a reaction or a shared file. Messages
without content (chat states, markers, receipts) pass; OMEMO messages without payload
(key transport, heartbeats) pass here and meet the device checks like any other.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic.policy.verdict import Verdict
from xmpp_clinic.xmpp.omemo import MalformedOmemo, OmemoHeader

STANZA_NAMESPACES = ("jabber:client", "jabber:component:accept", "jabber:server", "")

# (namespace, local name) of direct <message> children that carry readable content.
PLAINTEXT_CARRIERS = frozenset(
    {
        ("http://jabber.org/protocol/xhtml-im", "html"),
        ("jabber:x:oob", "x"),
        ("urn:xmpp:reactions:0", "reactions"),
        ("urn:xmpp:sfs:0", "file-sharing"),
    }
)
OTHER_ENCRYPTION = frozenset({("urn:xmpp:openpgp:0", "openpgp"), ("jabber:x:encrypted", "x")})


def _split(tag: object) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return "", tag


def carries_plaintext(message: ET.Element) -> bool:
    """Whether ``message`` has readable content outside any encryption (II.1)."""
    for child in message:
        namespace, local = _split(child.tag)
        if namespace in STANZA_NAMESPACES and local == "body":
            return True
        if namespace in STANZA_NAMESPACES and local == "subject" and (child.text or "").strip():
            return True
        if (namespace, local) in PLAINTEXT_CARRIERS:
            return True
    return False


def _other_encryption(message: ET.Element) -> bool:
    return any(_split(child.tag) in OTHER_ENCRYPTION for child in message)


def check_e2e(
    message: ET.Element, header: OmemoHeader | MalformedOmemo | None, *, required: bool = True
) -> Verdict:
    """Refuse plaintext and unreadable OMEMO headers (II.1)."""
    if isinstance(header, MalformedOmemo):
        return Verdict.reject(
            "malformed-omemo", f"The OMEMO header could not be read ({header.code}: {header.text})."
        )
    if header is not None or not required:
        return Verdict.accept()
    if _other_encryption(message):
        return Verdict.reject(
            "unsupported-encryption",
            "Care threads accept OMEMO encryption only; enable OMEMO for this chat.",
        )
    if carries_plaintext(message):
        return Verdict.reject(
            "plaintext-refused",
            "Unencrypted messages are not allowed in care threads; enable OMEMO and resend.",
        )
    return Verdict.accept()
