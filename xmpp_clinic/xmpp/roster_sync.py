"""Keeps each person's roster group in step with the directory, by XEP-0356 (I.3, IV.2).

For every person in the directory, the configured roster group (``directory.roster_group``,
e.g. "Clinic") holds their care threads and the colleagues who share a ward, team or
department with them (directory/roster.py decides). The gateway writes it with roster
sets addressed to the person's bare JID, which their server accepts from a privileged
entity in either dialect (xmpp/privilege.py); their own client then shows it. Entries
are removed when membership ends, and a person who leaves the directory loses the group.

With roster "get" permission the person's roster is read first (so a restart or a
change made by the person is seen); with "set" only, the gateway compares against what
it pushed on this connection. A server that grants neither is reported once by
:class:`~xmpp_clinic.xmpp.privilege.Privileges` and skipped.

ejabberd 23.01 grants roster "both" and answers roster gets, but every roster set from
a component fails there with ``internal-server-error`` ("Module failed to handle the
query": its mod_roster looks up its access rule for the component's domain, which is no
host of it). The first such answer marks the server as refusing roster sets: it is
reported once per connection and not asked again until the gateway reconnects. With
``directory.ejabberd_api_url`` set, the gateway then writes that server's rosters through
ejabberd's own HTTP API instead (directory/ejabberd_roster.py), which pushes the change
to the person's clients just the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from slixmpp import JID, ComponentXMPP, Iq
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.jid import InvalidJID

from xmpp_clinic.directory.ejabberd_roster import EjabberdRosterApi, RosterApiError
from xmpp_clinic.directory.model import Directory
from xmpp_clinic.directory.roster import RosterItem, ThreadView, entries_for, plan
from xmpp_clinic.jids import domain_of
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp.privilege import Privileges

log = logging.getLogger(__name__)

ROSTER_NS = "jabber:iq:roster"
IQ_TIMEOUT = 15.0
# A server that answers a granted roster set with these does not support it (see above).
REFUSED_SET = frozenset({"internal-server-error", "feature-not-implemented"})


def roster_items(iq: Iq) -> dict[str, RosterItem]:
    """The items of a roster result, by bare JID.

    A person's roster holds what they or their server put there: an item whose ``jid``
    slixmpp cannot parse (an emoji, a part too long) or that has none is skipped and
    counted, never a reason to fail that person's sync (issue 8.1; I.12). The gateway
    only ever writes items for directory addresses, which parse.
    """
    query = iq.xml.find(f"{{{ROSTER_NS}}}query")
    items: dict[str, RosterItem] = {}
    skipped = 0
    for item in query.findall(f"{{{ROSTER_NS}}}item") if query is not None else []:
        try:
            jid = JID(item.get("jid", "")).bare
        except InvalidJID:
            jid = ""
        if not jid:
            skipped += 1
            continue
        groups = frozenset(g.text or "" for g in item.findall(f"{{{ROSTER_NS}}}group"))
        items[jid] = RosterItem(jid, item.get("name", ""), groups)
    if skipped:
        log.info("roster items without a usable address skipped", extra={"skipped": skipped})
    return items


def item_element(item: RosterItem) -> ET.Element:
    """``<query xmlns="jabber:iq:roster"><item .../></query>`` for one roster set."""
    query = ET.Element(f"{{{ROSTER_NS}}}query")
    attrs = {"jid": item.jid}
    if item.remove:
        attrs["subscription"] = "remove"
    elif item.name:
        attrs["name"] = item.name
    element = ET.SubElement(query, f"{{{ROSTER_NS}}}item", attrs)
    for group in sorted(item.groups) if not item.remove else []:
        ET.SubElement(element, f"{{{ROSTER_NS}}}group").text = group
    return query


class RosterSync:
    """Pushes roster groups after every directory or thread change (I.3)."""

    def __init__(
        self,
        component: ComponentXMPP,
        privileges: Privileges,
        directory: Callable[[], Awaitable[Directory]],
        threads: Callable[[], Iterable[ThreadInfo]],
        *,
        group: str,
        api: EjabberdRosterApi | None = None,
    ) -> None:
        self._xmpp = component
        self._privileges = privileges
        self._directory = directory
        self._threads = threads
        self._group = group
        self._pushed: dict[str, dict[str, str]] = {}
        self._refusing: set[str] = set()  # servers whose roster sets fail (ejabberd 23.01)
        self._api = api
        self._lock = asyncio.Lock()
        self._first: asyncio.Task[None] | None = None
        self._pending: asyncio.Task[None] | None = None
        self._again = False

    def attach(self) -> None:
        self._xmpp.add_event_handler("session_start", self._session_started)

    async def stop(self) -> None:
        for task in (self._first, self._pending):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def changed(self) -> None:
        """The change listener ("directory", "threads"): schedule a refresh, return at once.

        Change listeners run before the next message is decided; roster pushes are round
        trips to the server and must not hold a message up. Changes arriving while a
        refresh runs are folded into one more refresh.
        """
        if self._pending is not None and not self._pending.done():
            self._again = True
            return
        self._pending = asyncio.ensure_future(self._refresh_until_quiet())

    async def _refresh_until_quiet(self) -> None:
        while True:
            self._again = False
            try:
                await self.refresh()
            except Exception:
                log.exception("roster push after a change failed")
            if not self._again:
                return

    async def refresh(self) -> None:
        """Bring every person's roster group in line; a change listener ("directory", "threads")."""
        async with self._lock:
            directory = await self._directory()
            domain = str(self._xmpp.boundjid.bare)
            views = [
                ThreadView(f"{t.name}@{domain}", t.title, t.member_jids) for t in self._threads()
            ]
            failed: Counter[str] = Counter()
            for jid in sorted(directory.jids | set(self._pushed)):
                wanted = entries_for(jid, directory, views)
                if jid in self._pushed and self._pushed[jid] == wanted:
                    continue
                problem = await self._bring_in_line(jid, wanted)
                if problem is None:
                    self._pushed[jid] = wanted
                elif problem:
                    failed[problem] += 1
            if failed:
                log.warning("roster push failed for some persons", extra={"errors": dict(failed)})

    async def _bring_in_line(self, jid: str, wanted: dict[str, str]) -> str | None:
        """Push one person's group: None when done, "" when skipped, else what failed."""
        server = domain_of(jid)
        via_api = server in self._refusing
        if via_api and self._api is None:
            return ""
        if not via_api and not self._privileges.roster_set(server):
            return ""
        try:
            await self._push(jid, wanted, via_api=via_api)
            return None
        except IqError as exc:
            condition = str(exc.iq["error"]["condition"])
            if condition not in REFUSED_SET:
                return condition
            self._refused(server, condition)
        except IqTimeout:
            return "timeout"
        except RosterApiError as exc:
            return str(exc)
        if self._api is None:
            return ""
        try:  # the server refused the roster set: once more through its HTTP API
            await self._push(jid, wanted, via_api=True)
            return None
        except RosterApiError as exc:
            return str(exc)

    def _refused(self, server: str, condition: str) -> None:
        self._refusing.add(server)
        if self._api is not None:
            log.warning(
                "server refuses roster sets from the gateway although it grants them; "
                "writing its rosters through ejabberd's HTTP API instead",
                extra={"server": server, "condition": condition},
            )
            return
        log.warning(
            "server refuses roster sets from the gateway although it grants them; "
            "the directory is not pushed into rosters on it",
            extra={
                "server": server,
                "condition": condition,
                "fallback": "set directory.ejabberd_api_url and allow get_roster, "
                "add_rosteritem, delete_rosteritem in api_permissions; the directory "
                "search (XEP-0055) still finds colleagues",
            },
        )

    async def _push(self, jid: str, wanted: dict[str, str], *, via_api: bool = False) -> None:
        if via_api and self._api is not None:
            current_api = await self._api.fetch(jid)
            for item in plan(current_api, wanted, self._group):
                await self._api.write(jid, item)
            return
        grant = self._privileges.grant(domain_of(jid))
        if grant is not None and grant.roster_get:
            current = await self._fetch(jid)
        else:
            current = {
                j: RosterItem(j, name, frozenset({self._group}))
                for j, name in self._pushed.get(jid, {}).items()
            }
        for item in plan(current, wanted, self._group):
            await self._send(jid, item_element(item))

    async def _fetch(self, jid: str) -> dict[str, RosterItem]:
        iq = self._xmpp.make_iq_get(queryxmlns=ROSTER_NS, ito=JID(jid), ifrom=self._xmpp.boundjid)
        send: Callable[..., Awaitable[Iq]] = iq.send
        return roster_items(await send(timeout=IQ_TIMEOUT))

    async def _send(self, jid: str, query: ET.Element) -> None:
        iq = self._xmpp.make_iq_set(ito=JID(jid), ifrom=self._xmpp.boundjid)
        iq.append(query)
        send: Callable[..., Awaitable[Iq]] = iq.send
        await send(timeout=IQ_TIMEOUT)

    def _session_started(self, _event: Any) -> None:
        # Rosters may have changed while the gateway was away: compare everyone again,
        # once the servers have said what the gateway may do.
        self._pushed.clear()
        self._refusing.clear()
        self._first = asyncio.ensure_future(self._after_grants())

    async def _after_grants(self) -> None:
        await self._privileges.wait(5.0)
        try:
            await self.refresh()
        except Exception:
            log.exception("roster push after connecting failed")
