"""Part sets: "part x of y" markers, checked and tracked without reading content (II.2).

A sender that splits one message marks every part with a content-free
``<part xmlns='urn:xmpp-clinic:parts:0' set='S' n='x' of='y'/>`` beside the OMEMO
element. The gateway cannot read the parts, so completeness is judged from the markers
alone: ``1 <= x <= y <= parts.max_parts``, the same ``y`` and the same sender across a
set, and no part twice. A set still incomplete ``parts.timeout_seconds`` after its first
part is announced in the thread; when its last part arrives after that, a second notice
says it is complete. Notices name the sender's nick and the time of the first part,
never content (II.1).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TypeVar

from xmpp_clinic import namespaces as ns
from xmpp_clinic.policy.verdict import ReasonCode

PART = f"{{{ns.CLINIC_PARTS}}}part"

T = TypeVar("T")


@dataclass(frozen=True)
class PartMarker:
    """The marker of one part: set id, its number ``n`` and the set's size ``of``."""

    set_id: str
    n: int
    of: int


@dataclass(frozen=True)
class PartSet:
    """What the gateway knows of one set in one thread (no content, II.1)."""

    thread: str  # the thread's name
    set_id: str
    sender: str  # real bare JID of the sender of its first part
    nick: str  # the sender's nick at the first part, for notices
    of: int
    received: frozenset[int]
    first_at: datetime
    missing_noticed: bool = False
    complete_noticed: bool = False

    @property
    def complete(self) -> bool:
        return len(self.received) == self.of

    @property
    def missing(self) -> tuple[int, ...]:
        return tuple(n for n in range(1, self.of + 1) if n not in self.received)

    def overdue(self, now: datetime, timeout_seconds: float) -> bool:
        """Incomplete, not yet announced, and older than the timeout."""
        return (
            not self.complete
            and not self.missing_noticed
            and now - self.first_at >= timedelta(seconds=timeout_seconds)
        )

    @property
    def late_complete(self) -> bool:
        """Complete after its missing parts were announced, and not yet said so."""
        return self.complete and self.missing_noticed and not self.complete_noticed


class MarkerError(ValueError):
    """A marker whose numbers cannot be those of a part of a set (II.2)."""

    def __init__(self, reason: ReasonCode) -> None:
        super().__init__(reason)
        self.reason = reason


# The sentences the sender reads are policy.verdict.REFUSALS' for these codes.
OUT_OF_RANGE = ReasonCode.PART_OUT_OF_RANGE
DUPLICATE = ReasonCode.PART_DUPLICATE
SET_CHANGED = ReasonCode.PART_SET_CHANGED


def read_marker(stanza: ET.Element, max_parts: int) -> PartMarker | None:
    """The part marker of ``stanza`` (a direct child), None without one.

    Raises :class:`MarkerError` for two markers or numbers out of range. The e2e check
    has already held ``set``, ``n`` and ``of`` to their shapes (id, digits).
    """
    found = stanza.findall(PART)
    if not found:
        return None
    if len(found) > 1:
        raise MarkerError(OUT_OF_RANGE)
    marker = found[0]
    try:
        n, of = int(marker.get("n", "")), int(marker.get("of", ""))
    except ValueError:
        raise MarkerError(OUT_OF_RANGE) from None
    set_id = marker.get("set", "")
    if not set_id or not 1 <= n <= of <= max_parts:
        raise MarkerError(OUT_OF_RANGE)
    return PartMarker(set_id, n, of)


def judge(marker: PartMarker, known: PartSet | None, sender: str) -> ReasonCode | None:
    """None when the part may pass; else why not (same ``of``, same sender, no repeat)."""
    if known is None:
        return None
    if known.of != marker.of or known.sender != sender:
        return SET_CHANGED
    if marker.n in known.received:
        return DUPLICATE
    return None


def receive(
    marker: PartMarker, known: PartSet | None, *, thread: str, sender: str, nick: str, at: datetime
) -> PartSet:
    """The set after ``marker`` was accepted (call :func:`judge` first).

    A set complete before anything was announced owes no notice: it is settled at once.
    """
    if known is None:
        known = PartSet(thread, marker.set_id, sender, nick, marker.of, frozenset(), at)
    after = replace(known, received=known.received | {marker.n})
    if after.complete and not after.missing_noticed:
        after = replace(after, complete_noticed=True)
    return after


def _clock(at: datetime) -> str:
    """HH:MM of the first part in the gateway's local time zone, as the ward reads clocks."""
    return at.astimezone().strftime("%H:%M")


def _numbers(missing: tuple[int, ...]) -> str:
    shown = [str(n) for n in missing[:10]]
    if len(missing) > 10:
        shown.append("...")
    if len(shown) == 1:
        return shown[0]
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def missing_notice(part_set: PartSet) -> str:
    """ "Part 2 of 3 of Dr Alice's message of 14:02 has not arrived." (II.2)"""
    missing = part_set.missing
    noun, verb = ("Part", "has") if len(missing) == 1 else ("Parts", "have")
    return (
        f"{noun} {_numbers(missing)} of {part_set.of} of {part_set.nick}'s message of "
        f"{_clock(part_set.first_at)} {verb} not arrived."
    )


def complete_notice(part_set: PartSet) -> str:
    """ "All 3 parts of Dr Alice's message of 14:02 have now arrived; it is complete." (II.2)"""
    return (
        f"All {part_set.of} parts of {part_set.nick}'s message of {_clock(part_set.first_at)} "
        "have now arrived; it is complete."
    )


def in_set_order(items: Sequence[T], marker_of: Callable[[T], PartMarker | None]) -> list[T]:
    """``items`` (archived messages, in arrival order) with every part set put back
    together: its parts in part order where its first part arrived; the rest unmoved.

    For views and exports of the archive (II.2); ``marker_of`` reads one item's marker
    (None: not a part). Sets are told apart by set id alone: the gateway has already
    refused a set continued by another sender.
    """
    sets: dict[str, list[tuple[int, T]]] = {}
    for item in items:
        marker = marker_of(item)
        if marker is not None:
            sets.setdefault(marker.set_id, []).append((marker.n, item))
    out: list[T] = []
    for item in items:
        marker = marker_of(item)
        if marker is None:
            out.append(item)
        elif marker.set_id in sets:
            out.extend(part for _n, part in sorted(sets.pop(marker.set_id), key=lambda p: p[0]))
    return out
