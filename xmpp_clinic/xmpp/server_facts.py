"""Ask the running server what the compliance report needs to know of it (IV.2, I.3, IV.8).

At every connect (and reconnect) the gateway asks each user domain's server:

- disco#info of the domain: is ``urn:xmpp-clinic:confine:0`` there (mod_clinic_confine
  loaded, IV.2/II.1), is MAM advertised (the server keeps its own archive, IV.8)?
- disco#items of the domain, and disco#info of each item: which upload service
  (XEP-0363) does it offer (I.7: its files need an expiry)?
- the XEP-0356 advertisement the server sends after the handshake: which privileges
  did it grant the gateway (I.3: roster push)?

The answers go into the store with the time observed (``report.server_facts``), where
``xmpp-clinic report`` reads them. A server that does not answer is recorded as
"unknown", never as "no"; nothing about users or messages is asked or logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from slixmpp import JID, ComponentXMPP
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream import StanzaBase
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from xmpp_clinic.report.server_facts import (
    CONFINEMENT,
    MAM,
    NO,
    PRIVILEGE,
    UNKNOWN,
    UPLOAD,
    YES,
    ServerFactsStore,
)
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp.privilege import DIALECTS, Grant, parse_grant

log = logging.getLogger(__name__)

CONFINE_FEATURE = "urn:xmpp-clinic:confine:0"
MAM_FEATURES = frozenset({"urn:xmpp:mam:2", "urn:xmpp:mam:1", "urn:xmpp:mam:0"})
UPLOAD_FEATURE = "urn:xmpp:http:upload:0"
_COMPONENT_NS = "jabber:component:accept"
# How long after connecting a missing privilege advertisement counts as "none granted".
ADVERTISEMENT_WAIT_SECONDS = 10.0
ASK_TIMEOUT_SECONDS = 10.0
MAX_ITEMS = 20  # disco#items of a domain asked for upload: a handful of services


@dataclass(frozen=True)
class DomainAnswers:
    """What one user domain's server said: disco#info features and the upload service.

    ``features`` is None when the server did not answer disco#info.
    """

    domain: str
    features: frozenset[str] | None
    upload: str | None  # the upload service's JID, "" for none, None if not answered


def grant_text(grant: Grant | None) -> str:
    """The grant as stored: "none", or "roster=both message=outgoing presence=roster"."""
    if grant is None:
        return "none"
    perms = {"roster": grant.roster, "message": grant.message, "presence": grant.presence}
    granted = [f"{k}={v}" for k, v in perms.items() if v != "none"]
    return " ".join(granted) or "none"


def facts_of(answers: DomainAnswers, grant: Grant | None) -> dict[str, str]:
    """The stored facts of one domain (``report.server_facts`` names)."""
    features = answers.features
    if features is None:
        confinement = mam = UNKNOWN
    else:
        confinement = YES if CONFINE_FEATURE in features else NO
        mam = YES if features & MAM_FEATURES else NO
    return {
        CONFINEMENT: confinement,
        MAM: mam,
        UPLOAD: UNKNOWN if answers.upload is None else answers.upload,
        PRIVILEGE: grant_text(grant),
    }


class ServerFactsProbe:
    """Asks each user domain at every session start and records the answers."""

    def __init__(
        self,
        component: ComponentXMPP,
        facts: ServerFactsStore,
        *,
        user_domains: Iterable[str],
        wait_seconds: float = ADVERTISEMENT_WAIT_SECONDS,
        timeout: float = ASK_TIMEOUT_SECONDS,
    ) -> None:
        self._xmpp = component
        self._facts = facts
        self._domains = tuple(sorted({d.lower() for d in user_domains}))
        self._wait = wait_seconds
        self._timeout = timeout
        self._grants: dict[str, Grant] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.observed = asyncio.Event()  # set after each round is recorded (tests wait)
        component.register_plugin("xep_0030")

    def attach(self) -> None:
        for dialect in DIALECTS:
            self._xmpp.register_handler(
                Callback(
                    f"server facts privilege {dialect}",
                    MatchXPath(f"{{{_COMPONENT_NS}}}message/{{{dialect}}}privilege"),
                    self._advertised,
                )
            )
        self._xmpp.add_event_handler("session_start", self._session_started)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _advertised(self, stanza: StanzaBase) -> None:
        server = str(stanza["from"]).lower()
        for child in stanza.xml:
            grant = parse_grant(server, child)
            if grant is not None:
                self._grants[server] = grant
                self._arrived.set()

    def _session_started(self, _event: Any) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._grants.clear()  # a new connection brings new advertisements
        self.observed.clear()
        self._task = asyncio.ensure_future(self._round())

    async def _round(self) -> None:
        try:
            answers = await asyncio.gather(*(self.ask(d) for d in self._domains))
            await self._wait_for_grants()
            for found in answers:
                values = facts_of(found, self._grants.get(found.domain))
                await self._facts.record(found.domain, values)
                log.info("server facts observed", extra={"server": found.domain, **values})
        except StoreUnavailable:
            log.warning("server facts not recorded: store unavailable")
        except Exception:  # never into the stream: the report then says "unknown"
            log.exception("server facts not observed")
        finally:
            self.observed.set()

    async def _wait_for_grants(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._wait):
                while not all(d in self._grants for d in self._domains):
                    self._arrived.clear()
                    await self._arrived.wait()

    async def _info(self, jid: str) -> frozenset[str] | None:
        try:
            iq = await self._xmpp.plugin["xep_0030"].get_info(
                jid=JID(jid), ifrom=self._xmpp.boundjid, timeout=self._timeout, cached=False
            )
        except (IqError, IqTimeout):
            return None
        return frozenset(str(f) for f in iq["disco_info"]["features"])

    async def _upload(self, domain: str) -> str | None:
        """The first item of the domain that offers HTTP upload; "" for none."""
        try:
            iq = await self._xmpp.plugin["xep_0030"].get_items(
                jid=JID(domain), ifrom=self._xmpp.boundjid, timeout=self._timeout
            )
        except (IqError, IqTimeout):
            return None
        items = [str(item[0]) for item in iq["disco_items"]["items"] if not item[1]]
        for jid in items[:MAX_ITEMS]:
            features = await self._info(jid)
            if features is not None and UPLOAD_FEATURE in features:
                return jid
        return ""

    async def ask(self, domain: str) -> DomainAnswers:
        """disco#info and the upload service of one user domain."""
        features, upload = await asyncio.gather(self._info(domain), self._upload(domain))
        return DomainAnswers(domain, features, upload)
