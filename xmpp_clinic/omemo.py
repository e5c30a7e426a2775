"""Read OMEMO elements without decrypting, and remove recipient keys (II.1, I.4, I.5).

Both OMEMO versions a care thread sees are understood:

- legacy OMEMO 0.3 (``eu.siacs.conversations.axolotl``): ``<header sid>`` holds
  ``<key rid [prekey]>`` elements that carry no JID, and one ``<iv>``;
- OMEMO 2 (``urn:xmpp:omemo:2``): ``<header sid>`` holds ``<keys jid>`` groups of
  ``<key rid [kex]>``.

Everything that should be ciphertext is decoded strictly and measured against what OMEMO
produces (the sizes below), so words cannot pass as a key, an IV or a
payload (II.1). A device may get several ``<key>``: Profanity lists a present occupant
twice and encrypts for the device twice (two steps of one session). The header then
names the device once, the stanza keeps every copy -- what the server's own MUC relays
and what recipients decrypt -- and :func:`strip_keys` removes every copy of a device
that is not approved.

Pure standard-library ElementTree, no slixmpp: the policy pipeline uses this on plain
data. Malformed input never raises; it comes back as :class:`MalformedOmemo` with a
stable code, because a stanza from the network must never crash the gateway.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection, Iterator
from dataclasses import dataclass

from xmpp_clinic.jids import InvalidJid, bare_jid


@dataclass(frozen=True)
class Namespace:
    """One OMEMO version as it appears on the wire and to operators.

    The only table of OMEMO versions in the package: the registry, the policy, PEP
    discovery, the CLI and the ad-hoc commands all take their names from here.
    """

    uri: str  # the XML namespace of <encrypted>, as stored in the registry
    short: str  # the operator's name for it: ``--namespace omemo2``
    device_list_node: str  # PEP node of the person's device list
    list_element: str  # the device list's root element
    identity_element: str  # the bundle's identity key element
    eme_name: str = "OMEMO"  # its name in XEP-0380 (explicit message encryption)

    def bundle_node(self, device_id: int) -> tuple[str, str | None]:
        """The PEP node and item id of one device's bundle."""
        if self.uri == LEGACY_NS:
            return f"{self.uri}.bundles:{device_id}", None
        return f"{self.uri}:bundles", str(device_id)


LEGACY_NS = "eu.siacs.conversations.axolotl"
OMEMO2_NS = "urn:xmpp:omemo:2"
LEGACY = Namespace(LEGACY_NS, "omemo", f"{LEGACY_NS}.devicelist", "list", "identityKey")
OMEMO2 = Namespace(OMEMO2_NS, "omemo2", f"{OMEMO2_NS}:devices", "devices", "ik", "OMEMO 2")
VERSIONS = (LEGACY, OMEMO2)
NAMESPACES = tuple(version.uri for version in VERSIONS)
BY_URI = {version.uri: version for version in VERSIONS}
BY_SHORT = {version.short: version for version in VERSIONS}


def short_name(uri: str) -> str:
    """``omemo`` / ``omemo2`` for a namespace URI; an unknown URI as it is."""
    version = BY_URI.get(uri)
    return version.short if version is not None else uri


# A care thread has tens of members with a few devices each; a thousand <key> elements
# (copies included; and a thousand OMEMO 2 <keys> groups) is far beyond any real message
# and bounds the work one stanza can cause.
MAX_KEYS = 1000
# OMEMO device ids are 31-bit (XEP-0384: "a random 31-bit integer"); shared by every
# place that parses one (wire, PEP, CLI, ad-hoc commands).
MIN_DEVICE_ID, MAX_DEVICE_ID = 1, 2**31 - 1
# Written as clients write them: no sign, no leading zero, no padding.
_DEVICE_ID = re.compile(r"[1-9][0-9]{0,9}")
# XML Schema booleans, as XEP-0384 defines prekey and kex.
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def device_id_or_none(value: str | None) -> int | None:
    """``value`` as an OMEMO device id (1 .. 2^31-1, canonical digits), else None."""
    if value is None or _DEVICE_ID.fullmatch(value) is None:
        return None
    number = int(value)
    return number if MIN_DEVICE_ID <= number <= MAX_DEVICE_ID else None


# What OMEMO puts on the wire, measured with python-omemo (oldmemo, twomemo) and read in
# Conversations' sources. Legacy <iv>: 12 bytes (Conversations, oldmemo and the clients
# that interoperate with them); 16 from older clients, which current clients still
# decrypt (AES-GCM takes either).
IV_SIZES = frozenset({12, 16})
# A legacy <key> is a libsignal message: version byte 0x33, then protobuf. A SignalMessage
# of today's 32-byte key material is 98 bytes (82 with the 16 bytes of old clients), a
# PreKeySignalMessage about 175; 64 is below all of them.
LEGACY_KEY_VERSION = 0x33
MIN_LEGACY_KEY = 64
# An OMEMO 2 <key> is an OMEMOAuthenticatedMessage (124 bytes) or a key exchange (~198).
MIN_OMEMO2_KEY = 64
MAX_KEY_BYTES = 2048  # ten times the largest key a client sends
# OMEMO 2 payloads are AES-256-CBC with PKCS#7 padding: whole 16-byte blocks. Legacy
# payloads are AES-GCM ciphertext without its tag: any length from 1 byte.
OMEMO2_BLOCK = 16


def _decode(text: str | None, what: str) -> bytes:
    """Strict base64: standard alphabet, padded, nothing inside; outer whitespace is
    allowed (pretty-printed XML)."""
    value = (text or "").strip()
    if not value:
        raise _Bad("empty-ciphertext", f"{what} is empty")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = None
    if not raw or base64.b64encode(raw).decode("ascii") != value:
        why = f"{what} is not base64 (standard alphabet, '=' padding, no spaces inside)"
        raise _Bad("bad-base64", why)
    return raw


def _check_key(raw: bytes, namespace: str, rid: int) -> None:
    legacy = namespace == LEGACY_NS
    smallest = MIN_LEGACY_KEY if legacy else MIN_OMEMO2_KEY
    if not smallest <= len(raw) <= MAX_KEY_BYTES or (legacy and raw[0] != LEGACY_KEY_VERSION):
        kind = "a Signal message" if legacy else "an OMEMO 2 key message"
        raise _Bad("bad-key", f"the <key> for device {rid} is not {kind} ({smallest}+ bytes)")


def _check_payload(raw: bytes, namespace: str) -> None:
    if namespace == OMEMO2_NS and len(raw) % OMEMO2_BLOCK:
        raise _Bad("bad-payload", f"the <payload> is not whole {OMEMO2_BLOCK}-byte blocks")


@dataclass(frozen=True)
class RecipientKey:
    """A device the message key is encrypted for: ``rid`` (of ``jid`` in OMEMO 2)."""

    rid: int
    jid: str | None = None  # None for legacy OMEMO, whose keys carry no JID
    prekey: bool = False  # legacy ``prekey`` / OMEMO 2 ``kex``: starts a new session


@dataclass(frozen=True)
class OmemoHeader:
    """What the gateway can know of an OMEMO message without decrypting it."""

    namespace: str
    sid: int  # the sending device
    keys: tuple[RecipientKey, ...]  # each recipient device once, in order of first key
    has_payload: bool  # False for key transport and heartbeats


@dataclass(frozen=True)
class MalformedOmemo:
    """Why an ``<encrypted>`` element could not be read; ``code`` is stable for operators."""

    code: str  # e.g. "missing-sid", "bad-rid", "bad-base64", "bad-iv", "too-many-keys"
    text: str  # names the element, never its content


class _Bad(Exception):
    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _ns(tag: object) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def encrypted_elements(message: ET.Element) -> list[ET.Element]:
    """Every direct ``<encrypted>`` child, whatever its namespace."""
    return [child for child in message if _local(child.tag) == "encrypted"]


def _device_id(value: str | None, what: str) -> int:
    if value is None:
        raise _Bad(f"missing-{what}", f"the OMEMO header has no '{what}' attribute")
    number = device_id_or_none(value)
    if number is None:
        raise _Bad(f"bad-{what}", f"'{what}' must be a device id between 1 and {MAX_DEVICE_ID}")
    return number


def jid_or_none(value: str | None) -> str | None:
    """The normalised bare JID of an OMEMO 2 ``<keys jid>``, else None."""
    if not value or "/" in value or value != value.strip():
        return None
    try:
        return bare_jid(value)
    except InvalidJid:
        return None


def _flag(element: ET.Element, name: str) -> bool:
    value = element.get(name)
    if value is None:
        return False
    if value not in _BOOLEANS:
        raise _Bad(f"bad-{name}", f"'{name}' on <key> must be true, false, 1 or 0")
    return _BOOLEANS[value]


def _within_cap(count: int) -> None:
    if count > MAX_KEYS:
        raise _Bad("too-many-keys", f"more than {MAX_KEYS} recipient keys")


def _key_elements(header: ET.Element, namespace: str) -> Iterator[tuple[str | None, ET.Element]]:
    """(JID or None, ``<key>``) for every key of the header; more than MAX_KEYS keys, or
    OMEMO 2 groups, stop the reading."""
    if namespace == LEGACY_NS:
        for count, element in enumerate(header.iterfind(f"{{{LEGACY_NS}}}key"), 1):
            _within_cap(count)
            yield None, element
        return
    count = 0
    for groups, group in enumerate(header.iterfind(f"{{{OMEMO2_NS}}}keys"), 1):
        _within_cap(groups)
        jid = jid_or_none(group.get("jid"))
        if jid is None:
            raise _Bad("bad-jid", "<keys jid> must be a bare JID")
        for element in group.iterfind(f"{{{OMEMO2_NS}}}key"):
            count += 1
            _within_cap(count)
            yield jid, element


def _collect(header: ET.Element, namespace: str) -> tuple[RecipientKey, ...]:
    """Each recipient device once; every copy of its key is checked all the same."""
    flag = "prekey" if namespace == LEGACY_NS else "kex"
    found: dict[tuple[str | None, int], RecipientKey] = {}
    for jid, element in _key_elements(header, namespace):
        rid = _device_id(element.get("rid"), "rid")
        key = RecipientKey(rid=rid, jid=jid, prekey=_flag(element, flag))
        _check_key(_decode(element.text, f"the <key> for device {rid}"), namespace, rid)
        found.setdefault((jid, rid), key)
    return tuple(found.values())


def _check_iv(header: ET.Element) -> None:
    ivs = header.findall(f"{{{LEGACY_NS}}}iv")
    if len(ivs) != 1:
        code = "missing-iv" if not ivs else "multiple-ivs"
        raise _Bad(code, "a legacy OMEMO header needs exactly one <iv>")
    if len(_decode(ivs[0].text, "the <iv>")) not in IV_SIZES:
        raise _Bad("bad-iv", "the <iv> must be 12 bytes (16 from older clients)")


def _parse(encrypted: ET.Element) -> OmemoHeader:
    namespace = _ns(encrypted.tag)
    if namespace not in NAMESPACES:
        raise _Bad("unknown-namespace", f"unsupported encryption namespace '{namespace}'")
    headers = encrypted.findall(f"{{{namespace}}}header")
    if len(headers) != 1:
        code = "missing-header" if not headers else "multiple-headers"
        raise _Bad(code, "an OMEMO message needs exactly one <header>")
    header = headers[0]
    sid = _device_id(header.get("sid"), "sid")
    keys = _collect(header, namespace)
    if not keys:
        raise _Bad("no-keys", "the OMEMO header carries no recipient key")
    if namespace == LEGACY_NS:
        _check_iv(header)
    payloads = encrypted.findall(f"{{{namespace}}}payload")
    if len(payloads) > 1:
        raise _Bad("multiple-payloads", "an OMEMO message has at most one <payload>")
    if payloads:
        _check_payload(_decode(payloads[0].text, "the <payload>"), namespace)
    return OmemoHeader(namespace=namespace, sid=sid, keys=keys, has_payload=bool(payloads))


def parse_header(message: ET.Element) -> OmemoHeader | MalformedOmemo | None:
    """The OMEMO header of ``message``; None when it has no ``<encrypted>`` (II.1)."""
    found = encrypted_elements(message)
    if not found:
        return None
    if len(found) > 1:
        return MalformedOmemo("multiple-encrypted", "more than one <encrypted> element")
    try:
        return _parse(found[0])
    except _Bad as bad:
        return MalformedOmemo(bad.code, bad.text)


def _remove(parent: ET.Element, child: ET.Element) -> None:
    """Remove ``child`` but keep its tail text, so every other byte stays as it was."""
    if child.tail:
        index = list(parent).index(child)
        if index == 0:
            parent.text = (parent.text or "") + child.tail
        else:
            previous = parent[index - 1]
            previous.tail = (previous.tail or "") + child.tail
    parent.remove(child)


def strip_keys(message: ET.Element, remove: Collection[RecipientKey]) -> ET.Element:
    """A copy of ``message`` without any ``<key>`` for the devices in ``remove`` (I.5).

    Each key is an independent encryption of the message key, so removing one leaves
    every other recipient able to decrypt; every copy of a removed device's key goes.
    Everything else is copied unchanged; an OMEMO 2 ``<keys>`` group left empty is
    removed with its last key. The copy is deep: callers bound the stanza first
    (:func:`xmpp_clinic.policy.shape.check_shape`).
    """
    result = copy.deepcopy(message)
    wanted = {(key.jid, key.rid) for key in remove}
    if not wanted:
        return result
    found = encrypted_elements(result)
    if len(found) != 1:
        return result
    encrypted = found[0]
    namespace = _ns(encrypted.tag)
    header = encrypted.find(f"{{{namespace}}}header")
    if header is None:
        return result
    if namespace == LEGACY_NS:
        for element in header.findall(f"{{{LEGACY_NS}}}key"):
            if (None, device_id_or_none(element.get("rid"))) in wanted:
                _remove(header, element)
        return result
    for group in header.findall(f"{{{OMEMO2_NS}}}keys"):
        jid = jid_or_none(group.get("jid"))
        for element in group.findall(f"{{{OMEMO2_NS}}}key"):
            if (jid, device_id_or_none(element.get("rid"))) in wanted:
                _remove(group, element)
        if group.find(f"{{{OMEMO2_NS}}}key") is None:
            _remove(header, group)
    return result
