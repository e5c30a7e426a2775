"""XEP-0454 ``aesgcm://`` links: finding them, and opening the files they point to (I.6).

A client that shares a file in an OMEMO chat encrypts it with AES-256-GCM, uploads the
ciphertext (tag appended) with HTTP upload (XEP-0363) and sends
``aesgcm://host/path#<iv><key>`` inside the encrypted message: the fragment holds the
IV (12 bytes, or the 16 bytes many clients still use) and the 32-byte key in hex. The
server only ever holds ciphertext; whoever reads the message can open the file. Pure
functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
IV_SIZES = (12, 16)  # XEP-0454 says 12; Conversations and others long sent 16
TAG_BYTES = 16
MAX_LINK_CHARS = 2048
MAX_LINKS = 10  # per message: what one message may make the gateway fetch

_LINK = re.compile(r"aesgcm://[^\s<>\"']{1,2048}", re.IGNORECASE)


class AttachmentRefused(Exception):
    """A link or file that is not taken into the documentation; ``reason`` is a stable
    code (it is what ``records show`` prints for the attachment gap)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True)
class AesgcmLink:
    """One parsed link; ``key`` and ``iv`` are secrets and never logged."""

    url: str  # as sent, fragment included
    host: str  # lower case, without port
    port: int | None
    path: str  # with its query, as requested over HTTP
    iv: bytes
    key: bytes

    @property
    def name(self) -> str:
        """The file name the link shows (its last path segment)."""
        return unquote(self.path.split("?", 1)[0].rsplit("/", 1)[-1])[:255]

    def __repr__(self) -> str:  # the key must not reach a log through a repr
        return f"AesgcmLink(host={self.host!r}, name={self.name!r})"


def find_links(text: str) -> list[str]:
    """The ``aesgcm://`` links in ``text`` in order, each once, at most :data:`MAX_LINKS`."""
    seen: list[str] = []
    for match in _LINK.finditer(text):
        link = match.group(0).rstrip(".,;:)]}")
        if link not in seen:
            seen.append(link)
        if len(seen) == MAX_LINKS:
            break
    return seen


def parse_link(url: str) -> AesgcmLink:
    """``url`` split into where to fetch and how to decrypt; AttachmentRefused if it is
    not a well-formed XEP-0454 link."""
    if len(url) > MAX_LINK_CHARS:
        raise AttachmentRefused("bad-link", "too long")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise AttachmentRefused("bad-link", "not a URL") from None
    if parts.scheme.lower() != "aesgcm" or not parts.hostname or parts.username:
        raise AttachmentRefused("bad-link", "not an aesgcm:// link to a host")
    fragment = parts.fragment
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2})+", fragment or "x"):
        raise AttachmentRefused("bad-link", "the key is not hexadecimal")
    secret = bytes.fromhex(fragment)
    iv_size = len(secret) - KEY_BYTES
    if iv_size not in IV_SIZES:
        raise AttachmentRefused("bad-link", "the key is not an IV and a 256-bit key")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return AesgcmLink(url, parts.hostname.lower(), port, path, secret[:iv_size], secret[iv_size:])


def decrypt(link: AesgcmLink, ciphertext: bytes) -> bytes:
    """The file's plaintext; AttachmentRefused("undecryptable") when key or tag are wrong."""
    if len(ciphertext) < TAG_BYTES:
        raise AttachmentRefused("undecryptable", "shorter than the GCM tag")
    try:
        return AESGCM(link.key).decrypt(link.iv, ciphertext, None)
    except InvalidTag:
        raise AttachmentRefused("undecryptable", "wrong key or altered file") from None


def encrypt(plaintext: bytes, iv: bytes, key: bytes) -> tuple[bytes, str]:
    """What a sending client does: the ciphertext to upload and the link fragment."""
    return AESGCM(key).encrypt(iv, plaintext, None), (iv + key).hex()
