"""History on join (XEP-0045 7.2.14/7.2.15): recent messages for clients without MUC MAM.

Clients such as Profanity show only the history a room sends when they join (issue 9).
When a member joins, the room host awaits :meth:`JoinHistory.send` after the member's
own presence and before the subject (the subject ends the join). It sends, from the
archive (I.6, IV.2):

- what the join presence's ``<history maxchars maxstanzas seconds since>`` asks for,
  every limit applied together; ``threads.join_history`` messages (default 20) when it
  asks for nothing; never more than :data:`MAX_HISTORY`;
- only messages the member may see: since they became a member unless
  ``threads.history_for_new_members`` is ``all`` -- the same window as MAM;
- each as the member would have received it live: only that member's keys
  (trimming.py, issue 13), the same stanza-id and ``<seq>`` as MAM (issue 11), the real
  JID of the sender (non-anonymous), and an XEP-0203 ``<delay from=thread stamp>``.

History is a courtesy: when the archive cannot be read the join goes on without it
(the member can still page through MAM), and the log says so without any content.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from slixmpp.plugins.xep_0082 import format_datetime, parse

from xmpp_clinic import namespaces as ns
from xmpp_clinic.archive.messages import MAX_PAGE, ArchiveEntry, ArchiveQuery, MessageArchive
from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.trimming import DeviceIndex, DeviceSource
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.mam import device_index, member_copy
from xmpp_clinic.xmpp.occupants import Occupant
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# The most messages one join sends, whatever the client asks (the bound of
# ``threads.join_history``); more is what MAM paging is for.
MAX_HISTORY = 500
# How long the join waits for the archive before going on without history.
HISTORY_TIMEOUT = 5.0


@dataclass(frozen=True)
class HistoryRequest:
    """What a join asks for (XEP-0045 7.2.15); None = no limit of that kind."""

    maxstanzas: int
    maxchars: int | None = None
    since: datetime | None = None


def _number(value: str | None) -> int | None:
    """A non-negative integer attribute; a malformed one is ignored, not an error."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def history_request(x: ET.Element | None, default: int, now: datetime) -> HistoryRequest:
    """Read ``<history/>`` from the join's ``<x xmlns=muc>`` (or the default when absent).

    ``seconds`` and ``since`` both bound the start; the later one wins. Malformed values
    are ignored (the join must not fail over its history).
    """
    history = x.find(f"{{{ns.MUC}}}history") if x is not None else None
    if history is None:
        return HistoryRequest(min(default, MAX_HISTORY))
    maxstanzas = _number(history.get("maxstanzas"))
    starts: list[datetime] = []
    seconds = _number(history.get("seconds"))
    if seconds is not None:
        starts.append(now - timedelta(seconds=min(seconds, 10**9)))
    if since := history.get("since"):
        with contextlib.suppress(ValueError, OverflowError):  # malformed: ignored
            starts.append(as_utc(parse(since)))
    asked_nothing = maxstanzas is None and not starts and history.get("maxchars") is None
    limit = default if asked_nothing else MAX_HISTORY if maxstanzas is None else maxstanzas
    return HistoryRequest(
        min(limit, MAX_HISTORY), _number(history.get("maxchars")), max(starts, default=None)
    )


class JoinHistory:
    """Sends a joining member the recent messages of the thread from the archive."""

    def __init__(
        self,
        host: ThreadHost,
        archive: MessageArchive,
        *,
        devices: DeviceSource | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.host = host
        self.archive = archive
        self.devices = devices  # whose keys each message keeps (trimming.py)
        self._clock = clock

    def attach(self) -> None:
        """Be the room host's history sender (awaited between self-presence and subject)."""
        self.host.history_sender = self.send

    async def send(self, thread: ThreadInfo, occupant: Occupant, x: ET.Element | None) -> None:
        """Send ``occupant`` the history its join asked for; never raises (see module)."""
        try:
            await asyncio.wait_for(self._send(thread, occupant, x), HISTORY_TIMEOUT)
        except Exception:
            log.warning("join history not sent", extra={"care_thread": thread.name})

    async def _send(self, thread: ThreadInfo, occupant: Occupant, x: ET.Element | None) -> None:
        member = thread.member(occupant.bare)
        if member is None:
            return
        settings = self.host.settings.threads
        request = history_request(x, settings.join_history, self._clock())
        if request.maxstanzas == 0 or request.maxchars == 0:
            return
        window = member.since if settings.history_for_new_members == "none" else None
        entries = await self._latest(thread, request, window)
        index = await device_index(self.devices, member.jid) if entries else None
        texts = [self._stanza(thread, occupant, member.jid, e, index) for e in entries]
        if request.maxchars is not None:
            texts = _within(texts, request.maxchars)
        for text in texts:
            self.host.xmpp.send(text)

    async def _latest(
        self, thread: ThreadInfo, request: HistoryRequest, window: datetime | None
    ) -> list[ArchiveEntry]:
        """The newest ``maxstanzas`` entries in the window, oldest first (keyset pages)."""
        entries: list[ArchiveEntry] = []
        before = ""  # "" = the last page
        while len(entries) < request.maxstanzas:
            query = ArchiveQuery(
                thread_id=thread.id,
                start=request.since,
                not_before=window,
                page_before=before,
                limit=min(request.maxstanzas - len(entries), MAX_PAGE),
            )
            page = await self.archive.query(query)
            entries = page.entries + entries
            if page.complete or not page.entries:
                break
            before = page.entries[0].stanza_id
        return entries

    def _stanza(
        self,
        thread: ThreadInfo,
        occupant: Occupant,
        member: str,
        entry: ArchiveEntry,
        index: DeviceIndex | None,
    ) -> str:
        """One history message: as relayed to this member, plus delay and the real JID."""
        thread_jid = self.host.thread_jid(thread.name)
        root = member_copy(entry, member, index, stream=ns.COMPONENT)
        root.set("to", occupant.jid)
        real = f"{entry.sender}/{entry.sender_resource}" if entry.sender_resource else entry.sender
        root.append(ms.muc_user(self.host.affiliation(thread, entry.sender), "none", real))
        stamp = format_datetime(entry.at)
        root.append(ms.element("delay", ns.DELAY, **{"from": thread_jid, "stamp": stamp}))
        return ms.serialise(root)


def _within(texts: list[str], maxchars: int) -> list[str]:
    """The newest stanzas whose XML together is at most ``maxchars`` characters."""
    kept: list[str] = []
    total = 0
    for text in reversed(texts):
        total += len(text)
        if total > maxchars:
            break
        kept.append(text)
    kept.reverse()
    return kept
