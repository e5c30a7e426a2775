"""Per-recipient key trimming: each member's copy carries only that member's keys (II.3, I.4).

Decided in issue 13 (docs/protocol.md, "What each member receives"). An OMEMO message to
a care thread carries one ``<key>`` per recipient device of every member. Each member's
copy -- live, from MAM and in the history sent on join -- keeps only the keys of that
member's usable (approved, unexpired) devices:

- legacy OMEMO 0.3: the ``<key rid>`` whose rid is one of the member's device ids, as
  the device registry resolves them (legacy keys carry no JID);
- OMEMO 2: only the member's own ``<keys jid>`` group, and in it the keys of the
  member's usable devices.

Everything else of the header -- ``sid``, the legacy ``<iv>`` -- and of the message is
the same for everyone. The copy sent back to the sender is the sender's own: the keys of
the sender's other devices. The archive keeps the full stanza (after the policy's
stripping), so a later reader still gets every key they are entitled to. Trimming is
also data minimisation: no member learns the device ids of every other member.

Two forms of the same rule:

- :func:`split` prepares a message once for fan-out: the serialised text before and
  after the keys, and each key serialised once; :meth:`SplitStanza.for_member` then
  builds a copy by joining strings, with no tree copy per recipient (the hot path);
- :func:`trim` removes, in place, the keys a member may not have from a parsed stanza
  (MAM results and join history, one stanza at a time).

Pure: standard-library ElementTree plus slixmpp's serialiser; no I/O. The device ids
come from the caller (a :class:`DeviceIndex`, the registry snapshot).
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from slixmpp.xmlstream import tostring

from xmpp_clinic.omemo import (
    LEGACY_NS,
    NAMESPACES,
    OMEMO2_NS,
    device_id_or_none,
    encrypted_elements,
    jid_or_none,
)


class DeviceIndex(Protocol):
    """Which devices a person may read with now (registry.snapshot.RegistrySnapshot)."""

    def usable_ids(self, jid: str, namespace: str, now: datetime) -> frozenset[int]: ...


class DeviceSource(Protocol):
    """Where the current :class:`DeviceIndex` comes from (the policy pipeline's cache)."""

    async def snapshot(self) -> DeviceIndex: ...


def _namespace(tag: object) -> str:
    return tag[1:].split("}", 1)[0] if isinstance(tag, str) and tag.startswith("{") else ""


def omemo_header(message: ET.Element) -> tuple[str, ET.Element] | None:
    """(namespace, ``<header>``) of the one OMEMO element of ``message``, else None."""
    found = encrypted_elements(message)
    if len(found) != 1:
        return None
    namespace = _namespace(found[0].tag)
    if namespace not in NAMESPACES:
        return None
    header = found[0].find(f"{{{namespace}}}header")
    return None if header is None else (namespace, header)


def _keeps_key(key: ET.Element, ids: Collection[int]) -> bool:
    return device_id_or_none(key.get("rid")) in ids


def _is_key_part(child: ET.Element, namespace: str) -> bool:
    """A header child that is trimmed: legacy ``<key>``, OMEMO 2 ``<keys>``."""
    local = "key" if namespace == LEGACY_NS else "keys"
    return child.tag == f"{{{namespace}}}{local}"


# ------------------------------------------------------------------ parsed stanzas
def trim(message: ET.Element, member: str, ids: Collection[int]) -> None:
    """Remove from ``message``, in place, every key that is not for one of ``ids`` of
    ``member`` (bare, normalised); a message without one OMEMO element is left alone."""
    found = omemo_header(message)
    if found is None:
        return
    namespace, header = found
    for child in list(header):
        if not _is_key_part(child, namespace):
            continue
        if namespace == LEGACY_NS:
            if not _keeps_key(child, ids):
                header.remove(child)
            continue
        if jid_or_none(child.get("jid")) != member:
            header.remove(child)
            continue
        for key in list(child):
            if key.tag == f"{{{OMEMO2_NS}}}key" and not _keeps_key(key, ids):
                child.remove(key)
        if child.find(f"{{{OMEMO2_NS}}}key") is None:
            header.remove(child)


# ------------------------------------------------------------- fan-out, pre-split
@dataclass(frozen=True)
class _Group:
    """One OMEMO 2 ``<keys jid>`` group: its tags and each key, serialised."""

    open: str
    close: str
    keys: tuple[tuple[int | None, str], ...]


@dataclass(frozen=True)
class SplitStanza:
    """A serialised message cut around its keys, for building each member's copy."""

    namespace: str
    head: str  # everything before the keys
    tail: str  # everything after them
    legacy: tuple[tuple[int | None, str], ...] = ()  # (rid, <key>) in order
    groups: dict[str, tuple[_Group, ...]] = field(default_factory=dict)  # OMEMO 2, by JID
    every: str = ""  # every key part, in order: the whole message is head + every + tail

    @property
    def whole(self) -> str:
        """The message with every key (for the archive): no second serialisation."""
        return f"{self.head}{self.every}{self.tail}"

    def for_member(self, member: str, ids: Collection[int]) -> str:
        """The serialised copy for ``member`` (bare, normalised) reading with ``ids``."""
        if self.namespace == LEGACY_NS:
            keys = "".join(text for rid, text in self.legacy if rid in ids)
            return f"{self.head}{keys}{self.tail}"
        parts = [self.head]
        for group in self.groups.get(member, ()):
            kept = [text for rid, text in group.keys if rid in ids]
            if kept:
                parts += (group.open, *kept, group.close)
        parts.append(self.tail)
        return "".join(parts)


def _marker(namespace: str) -> tuple[ET.Element, str]:
    """A placeholder element no client sends, and its serialised form inside a parent of
    ``namespace`` (random, so no text of the stanza can be taken for it)."""
    marker = ET.Element(f"{{{namespace}}}clinic-trim", {"n": secrets.token_hex(8)})
    return marker, str(tostring(marker, xmlns=namespace))


def _cut(element: ET.Element, marker: str, outer: str, top_level: bool) -> tuple[str, str]:
    """``element`` serialised, cut at ``marker``'s text: (before, after)."""
    before, found, after = str(tostring(element, xmlns=outer, top_level=top_level)).partition(
        marker
    )
    if not found:  # cannot happen: the marker is in the tree and unique
        raise ValueError("trim marker not found in the serialised stanza")
    return before, after


def _key_text(key: ET.Element, namespace: str) -> tuple[int | None, str]:
    tail, key.tail = key.tail, None  # whitespace between keys is not needed
    try:
        return device_id_or_none(key.get("rid")), str(tostring(key, xmlns=namespace))
    finally:
        key.tail = tail


def _group(group: ET.Element) -> _Group:
    keys = tuple(_key_text(key, OMEMO2_NS) for key in group if key.tag == f"{{{OMEMO2_NS}}}key")
    shell = ET.Element(group.tag, group.attrib)
    marker, text = _marker(OMEMO2_NS)
    shell.append(marker)
    open_, close = _cut(shell, text, OMEMO2_NS, top_level=False)
    return _Group(open_, close, keys)


def split(message: ET.Element, outer: str) -> SplitStanza | None:
    """Cut ``message`` (serialised in stream namespace ``outer``) around its keys.

    None when the message has no single OMEMO element with a header: every member then
    gets the same text. The header's children are replaced for the cut and put back, so
    ``message`` is unchanged afterwards.
    """
    found = omemo_header(message)
    if found is None:
        return None
    namespace, header = found
    original: Sequence[ET.Element] = list(header)
    parts = [child for child in original if _is_key_part(child, namespace)]
    if not parts:
        return None
    marker, text = _marker(namespace)
    first = original.index(parts[0])  # the keys go where the first one was
    rest = [child for child in original if not _is_key_part(child, namespace)]
    header[:] = [*rest[:first], marker, *rest[first:]]
    try:
        head, tail = _cut(message, text, outer, top_level=True)
    finally:
        header[:] = original
    if namespace == LEGACY_NS:
        legacy = tuple(_key_text(key, namespace) for key in parts)
        every = "".join(text for _rid, text in legacy)
        return SplitStanza(namespace, head, tail, legacy=legacy, every=every)
    groups: dict[str, tuple[_Group, ...]] = {}
    texts: list[str] = []
    for part in parts:
        group = _group(part)
        texts += (group.open, *(text for _rid, text in group.keys), group.close)
        jid = jid_or_none(part.get("jid"))
        if jid is not None:
            groups[jid] = (*groups.get(jid, ()), group)
    return SplitStanza(namespace, head, tail, groups=groups, every="".join(texts))
