"""Client software of every occupant session: ask, record, notify, refuse (I.13, III.2, IV.9).

When a member's session joins a thread, the gateway asks that full JID for its software
version (XEP-0092) and reads the XEP-0115 caps node from the join presence. The answer
is compared with the ``[clients]`` minimums (``report.clients``); an outdated session
gets a content-free notice, is flagged in the store (report, ``devices list``), and with
``clients.outdated = "refuse"`` its messages to threads are refused with the reason code
``client-outdated`` until it rejoins with an updated client.
"""

from __future__ import annotations

import asyncio
import logging
import xml.etree.ElementTree as ET

from slixmpp import JID, Presence
from slixmpp.exceptions import IqError, IqTimeout

from xmpp_clinic import namespaces as ns
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, ReasonCode, Verdict
from xmpp_clinic.report.clients import (
    OUTDATED_REASON,
    REFUSAL_TEXT,
    ClientCheck,
    ClientSoftware,
    check_client,
    notice,
    refuses,
)
from xmpp_clinic.report.sessions import ClientSessions
from xmpp_clinic.settings.report import ClientsSettings
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.routing import ToThread, handle
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

CAPS = "{http://jabber.org/protocol/caps}c"
NOT_JOINS = {"error", "probe", "subscribe", "subscribed", "unsubscribe", "unsubscribed"}


# Until policy.verdict names the code, a refusal carries the generic policy error with
# the client-outdated text; the sentence and the logs still say which reason it was.
def _reason() -> ReasonCode:
    try:
        return ReasonCode(OUTDATED_REASON)
    except ValueError:
        return ReasonCode.POLICY_ERROR


REASON = _reason()


class ClientVersions:
    """Per-session client software for one gateway (composition: the host and a store)."""

    def __init__(
        self, host: ThreadHost, sessions: ClientSessions, settings: ClientsSettings
    ) -> None:
        self.host = host
        self.xmpp = host.xmpp
        self.settings = settings
        self._sessions = sessions
        self._checks: dict[str, ClientCheck] = {}
        self._asking: dict[str, asyncio.Task[None]] = {}

    def attach(self) -> None:
        """Watch join presences to threads; a second handler beside the room host's."""
        if self.settings.check_versions:
            handle(
                self.xmpp,
                "ClientVersions",
                ToThread("presence", self.host.domain),
                self._on_presence,
            )

    def gate(self, inner: MessagePolicy) -> MessagePolicy:
        """``inner`` behind the outdated-client check (the relay's policy)."""
        return OutdatedClientGate(inner, self)

    def check_for(self, full_jid: str) -> ClientCheck | None:
        """What the session ``full_jid`` was found to be, or None if not (yet) asked."""
        return self._checks.get(full_jid)

    async def _on_presence(self, pres: Presence) -> None:
        sender: JID = pres["from"]
        full = str(sender)
        if not sender.resource or pres["type"] in NOT_JOINS:
            return
        if pres["type"] == "unavailable":
            self._checks.pop(full, None)
            return
        thread = self.host.thread_for(pres["to"])
        if thread is None or thread.member(sender.bare) is None:
            return  # not a member: the room host refuses the join; nothing to ask
        if full in self._checks or full in self._asking:
            return
        caps = pres.xml.find(CAPS)
        node = caps.get("node", "") if caps is not None else ""
        task = asyncio.ensure_future(self._ask(sender, node))
        self._asking[full] = task
        task.add_done_callback(lambda _t: self._asking.pop(full, None))

    async def _ask(self, full: JID, caps_node: str) -> None:
        """Ask ``full`` for its version; record, judge, and notify when outdated."""
        try:
            iq = await self.xmpp.plugin["xep_0092"].get_version(
                full, ifrom=self.xmpp.boundjid, timeout=self.settings.ask_timeout_seconds
            )
            answer = iq["software_version"]
            software = ClientSoftware(
                str(answer["name"] or ""),
                str(answer["version"] or ""),
                str(answer["os"] or ""),
                caps_node,
            )
        except (IqError, IqTimeout):
            software = ClientSoftware(caps_node=caps_node)  # no answer: nothing to compare
        check = check_client(software, self.settings)
        self._checks[str(full)] = check
        try:
            await self._sessions.record(str(full), software, check)
        except StoreUnavailable:
            log.warning("client version not recorded: store unavailable")
        if check.outdated:
            log.info(
                "outdated client",
                extra={"reason": OUTDATED_REASON, "jid": full.bare, "software": check.reason},
            )
            self._notify(full, notice(check, self.settings))

    def _notify(self, full: JID, text: str) -> None:
        """A chat message from the gateway to that session: no message content (I.13)."""
        root = ms.stanza("message", self.xmpp.boundjid.bare, str(full), type="chat")
        ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = text
        self.xmpp.send(ms.serialise(root))


class OutdatedClientGate:
    """Refuse messages of outdated sessions when ``clients.outdated = "refuse"``; else ask
    the inner policy (I.13, IV.9)."""

    def __init__(self, inner: MessagePolicy, versions: ClientVersions) -> None:
        self.inner = inner
        self.versions = versions

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        check = self.versions.check_for(ctx.stanza.get("from", ""))
        if refuses(check, self.versions.settings):
            return Verdict.reject(REASON, REFUSAL_TEXT)
        return await self.inner.evaluate(ctx)
