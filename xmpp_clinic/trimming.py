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

Pure: standard-library ElementTree and the caller's serialiser; no I/O. The device ids
come from the caller (a :class:`DeviceIndex`, the registry snapshot).
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from xmpp_clinic.omemo import (
    LEGACY_NS,
    NAMESPACES,
    OMEMO2_NS,
    device_id_or_none,
    encrypted_elements,
    jid_or_none,
)

# Writes a stanza as it goes on the stream; must write letters and digits in text as
# they are (xmpp.muc_stanzas.serialise does).
Serialiser = Callable[[ET.Element], str]


class DeviceIndex(Protocol):
    """Which devices a person may read with now (registry.snapshot.RegistrySnapshot)."""

    def usable_ids(self, jid: str, namespace: str, now: datetime) -> frozenset[int]: ...


class DeviceSource(Protocol):
    """Where the current :class:`DeviceIndex` of some persons (bare JIDs) comes from (the
    policy pipeline's cache)."""

    async def snapshot(self, persons: Collection[str]) -> DeviceIndex: ...


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
        for key in list(child):  # anything but a kept <key> goes (as in split)
            if key.tag != f"{{{OMEMO2_NS}}}key" or not _keeps_key(key, ids):
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

    _at: dict[int, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        at: dict[int, tuple[int, ...]] = {}  # legacy rid -> positions of its keys
        for position, (rid, _text) in enumerate(self.legacy):
            if rid is not None:
                at[rid] = (*at.get(rid, ()), position)
        object.__setattr__(self, "_at", at)

    @property
    def whole(self) -> str:
        """The message with every key (for the archive): no second serialisation."""
        return f"{self.head}{self.every}{self.tail}"

    def for_member(self, member: str, ids: Collection[int]) -> str:
        """The serialised copy for ``member`` (bare, normalised) reading with ``ids``."""
        if self.namespace == LEGACY_NS:  # work in the member's few ids, not every key
            found = sorted(p for rid in ids for p in self._at.get(rid, ()))
            keys = "".join(self.legacy[position][1] for position in found)
            return f"{self.head}{keys}{self.tail}"
        parts = [self.head]
        for group in self.groups.get(member, ()):
            kept = [text for rid, text in group.keys if rid in ids]
            if kept:
                parts += (group.open, *kept, group.close)
        parts.append(self.tail)
        return "".join(parts)


def _tokens(count: int) -> list[str]:
    """``count`` random separators put into the text between keys for one serialisation:
    letters and digits only (serialised as they are), unguessable, so no text of the
    stanza can be taken for one, and of equal length, so none is part of another. One
    draw of randomness for all (a system call each was a measurable share of a relay)."""
    base = secrets.token_hex(10)
    return [f"trim{base}x{index}" for index in range(count)]


def _rid(element: ET.Element, tag: str) -> int | None:
    return device_id_or_none(element.get("rid")) if element.tag == tag else None


def _serialise_with_tokens(
    message: ET.Element,
    header: ET.Element,
    parts: list[ET.Element],
    serialise: Serialiser,
    *tokens: str,
) -> str:
    """``message`` serialised once, with ``tokens`` (start, after each part, and for OMEMO 2
    groups: start of keys, after each key) in place of the whitespace around the keys.

    Only the texts and tails of the header, the parts and their keys are changed, and all
    are put back; so are the header's children, which are rearranged so the keys stand
    together where the first one was.
    """
    start, after_part, *inner = tokens
    original = list(header)
    first = original.index(parts[0])
    rest = [child for child in original if child not in parts]
    touched = [header, *rest[first - 1 : first], *parts]
    if inner:
        touched += [key for part in parts for key in part]
    saved = [(element, element.text, element.tail) for element in touched]
    header[:] = [*rest[:first], *parts, *rest[first:]]
    try:
        if first == 0:
            header.text = start
        else:
            rest[first - 1].tail = start
        for part in parts:
            part.tail = after_part
            if inner:
                part.text = inner[0]
                for key in part:
                    key.tail = inner[1]
        return serialise(message)
    finally:
        header[:] = original
        for element, text, tail in saved:
            element.text, element.tail = text, tail


def split(message: ET.Element, serialise: Serialiser) -> SplitStanza | None:
    """Cut ``message`` around its keys, as ``serialise`` writes it (the relay's stanza
    serialiser, muc_stanzas.serialise).

    None when the message has no single OMEMO element with a header: every member then
    gets the same text. One serialisation of the whole message, cut at separators put in
    for it; ``message`` is unchanged afterwards (whitespace between keys aside, which
    the copies and :attr:`SplitStanza.whole` leave out).
    """
    found = omemo_header(message)
    if found is None:
        return None
    namespace, header = found
    parts = [child for child in header if _is_key_part(child, namespace)]
    if not parts:
        return None
    legacy = namespace == LEGACY_NS
    tokens = _tokens(2 if legacy else 4)
    text = _serialise_with_tokens(message, header, parts, serialise, *tokens)
    head, _, after = text.partition(tokens[0])
    *chunks, tail = after.split(tokens[1])
    if len(chunks) != len(parts):  # cannot happen: each token is in the text once per part
        raise ValueError("trim separators not found in the serialised stanza")
    if legacy:
        keys = tuple(zip((_rid(p, f"{{{LEGACY_NS}}}key") for p in parts), chunks, strict=True))
        return SplitStanza(namespace, head, tail, legacy=keys, every="".join(chunks))
    groups: dict[str, tuple[_Group, ...]] = {}
    for part, chunk in zip(parts, chunks, strict=True):
        open_, _, inside = chunk.partition(tokens[2])
        *texts, close = inside.split(tokens[3])
        rids = (_rid(key, f"{{{OMEMO2_NS}}}key") for key in part)
        group = _Group(open_, close, tuple(zip(rids, texts, strict=True)))
        jid = jid_or_none(part.get("jid"))
        if jid is not None:
            groups[jid] = (*groups.get(jid, ()), group)
    every = "".join(chunk.replace(tokens[2], "").replace(tokens[3], "") for chunk in chunks)
    return SplitStanza(namespace, head, tail, groups=groups, every=every)
