"""Read OMEMO headers without decrypting, and remove recipient keys (II.1, I.4, I.5).

Both OMEMO versions a care thread sees are understood:

- legacy OMEMO 0.3 (``eu.siacs.conversations.axolotl``): ``<header sid>`` holds
  ``<key rid [prekey]>`` elements that carry no JID;
- OMEMO 2 (``urn:xmpp:omemo:2``): ``<header sid>`` holds ``<keys jid>`` groups of
  ``<key rid [kex]>``.

Pure standard-library ElementTree, no slixmpp: the policy pipeline uses this on plain
data. Malformed input never raises; it comes back as :class:`MalformedOmemo` with a
stable code, because a stanza from the network must never crash the gateway.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Collection
from dataclasses import dataclass


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

    def bundle_node(self, device_id: int) -> tuple[str, str | None]:
        """The PEP node and item id of one device's bundle."""
        if self.uri == LEGACY_NS:
            return f"{self.uri}.bundles:{device_id}", None
        return f"{self.uri}:bundles", str(device_id)


LEGACY_NS = "eu.siacs.conversations.axolotl"
OMEMO2_NS = "urn:xmpp:omemo:2"
LEGACY = Namespace(LEGACY_NS, "omemo", f"{LEGACY_NS}.devicelist", "list", "identityKey")
OMEMO2 = Namespace(OMEMO2_NS, "omemo2", f"{OMEMO2_NS}:devices", "devices", "ik")
VERSIONS = (LEGACY, OMEMO2)
NAMESPACES = tuple(version.uri for version in VERSIONS)
BY_URI = {version.uri: version for version in VERSIONS}
BY_SHORT = {version.short: version for version in VERSIONS}


def short_name(uri: str) -> str:
    """``omemo`` / ``omemo2`` for a namespace URI; an unknown URI as it is."""
    version = BY_URI.get(uri)
    return version.short if version is not None else uri


# A care thread has tens of members with a few devices each; a thousand keys is far
# beyond any real message and bounds the work one stanza can cause.
MAX_KEYS = 1000
# OMEMO device ids are 31-bit (XEP-0384: "a random 31-bit integer"); shared by every
# place that parses one (wire, PEP, CLI, ad-hoc commands).
MIN_DEVICE_ID, MAX_DEVICE_ID = 1, 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")
_TRUE = ("true", "1")


@dataclass(frozen=True)
class RecipientKey:
    """One ``<key>``: the message key encrypted for device ``rid`` (of ``jid`` in OMEMO 2)."""

    rid: int
    jid: str | None = None  # None for legacy OMEMO, whose keys carry no JID
    prekey: bool = False  # legacy ``prekey`` / OMEMO 2 ``kex``: starts a new session


@dataclass(frozen=True)
class OmemoHeader:
    """What the gateway can know of an OMEMO message without decrypting it."""

    namespace: str
    sid: int  # the sending device
    keys: tuple[RecipientKey, ...]
    has_payload: bool  # False for key transport and heartbeats


@dataclass(frozen=True)
class MalformedOmemo:
    """Why an ``<encrypted>`` element could not be read; ``code`` is stable for operators."""

    code: str  # e.g. "missing-sid", "bad-rid", "duplicate-key", "too-many-keys"
    text: str


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
    if not _DIGITS.fullmatch(value) or not MIN_DEVICE_ID <= int(value) <= MAX_DEVICE_ID:
        raise _Bad(f"bad-{what}", f"'{what}' must be a device id between 1 and {MAX_DEVICE_ID}")
    return int(value)


def _bare_jid(value: str | None) -> str:
    if not value or "/" in value or value.count("@") > 1 or len(value) > 3071:
        raise _Bad("bad-jid", "<keys jid> must be a bare JID")
    return value.lower()


def _key(element: ET.Element, jid: str | None, flag: str) -> RecipientKey:
    rid = _device_id(element.get("rid"), "rid")
    return RecipientKey(rid=rid, jid=jid, prekey=(element.get(flag) or "").lower() in _TRUE)


def _collect(header: ET.Element, namespace: str) -> tuple[RecipientKey, ...]:
    keys: list[RecipientKey] = []
    seen: set[tuple[str | None, int]] = set()

    def add(key: RecipientKey) -> None:
        if len(keys) >= MAX_KEYS:
            raise _Bad("too-many-keys", f"more than {MAX_KEYS} recipient keys")
        if (key.jid, key.rid) in seen:
            raise _Bad("duplicate-key", f"two keys for device {key.rid}")
        seen.add((key.jid, key.rid))
        keys.append(key)

    if namespace == LEGACY_NS:
        for element in header.iterfind(f"{{{LEGACY_NS}}}key"):
            add(_key(element, None, "prekey"))
        return tuple(keys)
    for group in header.iterfind(f"{{{OMEMO2_NS}}}keys"):
        jid = _bare_jid(group.get("jid"))
        for element in group.iterfind(f"{{{OMEMO2_NS}}}key"):
            add(_key(element, jid, "kex"))
    return tuple(keys)


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
    has_payload = encrypted.find(f"{{{namespace}}}payload") is not None
    return OmemoHeader(namespace=namespace, sid=sid, keys=keys, has_payload=has_payload)


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
    """A copy of ``message`` without the ``<key>`` elements in ``remove`` (I.5).

    Each key is an independent encryption of the message key, so removing one leaves
    every other recipient able to decrypt. Everything else is copied unchanged; an
    OMEMO 2 ``<keys>`` group left empty is removed with its last key.
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
            if (None, _int_or_none(element.get("rid"))) in wanted:
                _remove(header, element)
        return result
    for group in header.findall(f"{{{OMEMO2_NS}}}keys"):
        jid = (group.get("jid") or "").lower()
        for element in group.findall(f"{{{OMEMO2_NS}}}key"):
            if (jid, _int_or_none(element.get("rid"))) in wanted:
                _remove(group, element)
        if group.find(f"{{{OMEMO2_NS}}}key") is None:
            _remove(header, group)
    return result


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value is not None and _DIGITS.fullmatch(value) else None
