"""XEP-0356 privileged entity, in both dialects the supported servers speak (I.3, IV.2).

When the component connects, each user domain's server advertises what the gateway may
do there in a ``<message><privilege/></message>``: ejabberd 23.01 in
``urn:xmpp:privilege:1``, Prosody 0.12's mod_privilege in ``urn:xmpp:privilege:2``.
slixmpp 1.17's xep_0356 plugin reads only ``:2``, so this module reads both into one
:class:`Grant` per server. Roster access itself is the same in both dialects (a
``jabber:iq:roster`` IQ addressed to the user's bare JID), so nothing else differs.

A server that grants no roster access, or none at all, is reported once per connection,
with the config line that fixes it; the gateway keeps working without roster push.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slixmpp import ComponentXMPP
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

log = logging.getLogger(__name__)

PRIVILEGE_V1 = "urn:xmpp:privilege:1"  # ejabberd 23.01
PRIVILEGE_V2 = "urn:xmpp:privilege:2"  # Prosody 0.12 mod_privilege, slixmpp 1.17
DIALECTS = (PRIVILEGE_V1, PRIVILEGE_V2)
_COMPONENT_NS = "jabber:component:accept"
# How long after connecting a missing advertisement counts as "no privileges".
ADVERTISEMENT_WAIT_SECONDS = 10.0
_ROSTER_GET = frozenset({"get", "both"})
_ROSTER_SET = frozenset({"set", "both"})


@dataclass(frozen=True)
class Grant:
    """What one server lets the gateway do for its users (XEP-0356 section 4.2)."""

    server: str
    dialect: str
    roster: str = "none"  # none, get, set, both
    message: str = "none"  # none, outgoing
    presence: str = "none"  # none, managed_entity, roster

    @property
    def roster_get(self) -> bool:
        return self.roster in _ROSTER_GET

    @property
    def roster_set(self) -> bool:
        return self.roster in _ROSTER_SET


def parse_grant(server: str, privilege: ET.Element) -> Grant | None:
    """The grant in a ``<privilege/>`` element of either dialect; None for another element."""
    dialect = privilege.tag[1:].split("}", 1)[0] if privilege.tag.startswith("{") else ""
    if dialect not in DIALECTS or not privilege.tag.endswith("}privilege"):
        return None
    perms: dict[str, str] = {}
    for perm in privilege.findall(f"{{{dialect}}}perm"):
        access, kind = perm.get("access", ""), perm.get("type", "none")
        if access in ("roster", "message", "presence"):
            perms[access] = kind
    return Grant(server, dialect, **perms)


def fix_hint(server: str, component: str) -> str:
    """The config that gives the gateway roster access, for the operator's log line."""
    return (
        f'Prosody: privileged_entities = {{ ["{component}"] = {{ roster = "both" }} }} '
        f'on VirtualHost "{server}" with mod_privilege loaded; ejabberd: '
        "mod_privilege: {roster: {both: gateway}} with an acl naming the component"
    )


class Privileges:
    """The grants of every user domain, learnt from the servers' advertisements."""

    def __init__(
        self,
        component: ComponentXMPP,
        *,
        user_domains: Iterable[str],
        wait_seconds: float = ADVERTISEMENT_WAIT_SECONDS,
    ) -> None:
        self._xmpp = component
        self._domains = tuple(sorted({d.lower() for d in user_domains}))
        self._wait = wait_seconds
        self._grants: dict[str, Grant] = {}
        self._arrived = asyncio.Event()
        self._check: asyncio.Task[None] | None = None

    def attach(self) -> None:
        for dialect in DIALECTS:
            self._xmpp.register_handler(
                Callback(
                    f"privilege {dialect}",
                    MatchXPath(f"{{{_COMPONENT_NS}}}message/{{{dialect}}}privilege"),
                    self._advertised,
                )
            )
        self._xmpp.add_event_handler("session_start", self._session_started)

    def grant(self, server: str) -> Grant | None:
        """The grant ``server`` advertised on this connection; None if it sent none."""
        return self._grants.get(server.lower())

    def roster_set(self, server: str) -> bool:
        grant = self.grant(server)
        return grant is not None and grant.roster_set

    async def wait(self, timeout: float) -> None:
        """Until every user domain advertised, or ``timeout`` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while not all(d in self._grants for d in self._domains):
                    self._arrived.clear()
                    await self._arrived.wait()

    async def stop(self) -> None:
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._check

    def _advertised(self, stanza: StanzaBase) -> None:
        server = str(stanza["from"]).lower()
        for child in stanza.xml:
            grant = parse_grant(server, child)
            if grant is not None:
                self._grants[server] = grant
                log.info(
                    "server granted privileges",
                    extra={"server": server, "dialect": grant.dialect, "roster": grant.roster},
                )
                self._arrived.set()

    def _session_started(self, _event: Any) -> None:
        self._grants.clear()  # a new connection brings new advertisements
        if self._check is None or self._check.done():
            self._check = asyncio.ensure_future(self._report())

    async def _report(self) -> None:
        """Say once per connection which domains grant no roster access (I.3)."""
        await self.wait(self._wait)
        component = str(self._xmpp.boundjid)
        for domain in self._domains:
            grant = self._grants.get(domain)
            if grant is None or not grant.roster_set:
                log.warning(
                    "no XEP-0356 roster permission: the directory is not pushed into rosters",
                    extra={
                        "server": domain,
                        "granted": grant.roster if grant else "nothing",
                        "fix": fix_hint(domain, component),
                    },
                )
