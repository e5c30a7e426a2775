# ruff: noqa: E501  (literal XML reads best on one line)
"""Client versions on the wire: ask on join, notice, refuse when configured (I.13, IV.9)."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from tests.unit.harness import COMPONENT
from tests.unit.test_threads_relay import OMEMO_MESSAGE, relayed
from tests.unit.threads_stanza_base import ALICE, BOB, EVE, WARD, EncryptedOnly, ThreadStanzaTest
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, Verdict
from xmpp_clinic.report.clients import REFUSAL_TEXT
from xmpp_clinic.report.sessions import ClientSessions
from xmpp_clinic.settings.report import ClientsSettings
from xmpp_clinic.xmpp.client_versions import ClientVersions

VERSION_NS = "jabber:iq:version"
CAPS = '<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="http://conversations.im" ver="abc="/>'


class Later:
    """The relay's policy, filled in once the host (and so ClientVersions) exists."""

    inner: MessagePolicy | None = None

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        assert self.inner is not None
        return await self.inner.evaluate(ctx)


class ClientVersionTest(ThreadStanzaTest):
    outdated = "notify"

    def setUp(self) -> None:
        self.policy = later = Later()
        super().setUp()
        self.xmpp.register_plugin("xep_0092")
        settings = ClientsSettings(outdated=self.outdated)  # type: ignore[arg-type]
        self.sessions = ClientSessions(self.store)
        self.versions = ClientVersions(self.host, self.sessions, settings)
        self.versions.attach()
        later.inner = self.versions.gate(EncryptedOnly())

    def sent_until_version_query(self) -> ET.Element | None:
        """Drop the room's join answers; the version query if one was sent."""
        while True:
            raw = self.xmpp.socket.next_sent()  # type: ignore[union-attr]
            if raw is None:
                return None
            text = raw if isinstance(raw, str) else raw.decode()
            if VERSION_NS in text and text.startswith("<iq"):
                return ET.fromstring(text)

    def join_answering(self, full: str, nick: str, answer: str) -> ET.Element | None:
        """Join with caps; answer the gateway's version query with ``answer`` (a <query>)."""
        self.recv(
            f'<presence from="{full}" to="{WARD}/{nick}"><x xmlns="http://jabber.org/protocol/muc"/>{CAPS}</presence>'
        )
        self.run_coro(asyncio.sleep(0.05))  # the presence handlers start the query
        asking = list(self.versions._asking.values())
        self._waited_on.update(asking)
        self.settle()
        query = self.sent_until_version_query()
        if query is None:
            return None
        self.recv(
            f'<iq type="result" from="{full}" to="{COMPONENT}" id="{query.get("id")}">{answer}</iq>'
        )
        # Only the version queries: other tasks pending on the shared loop (waiters left
        # by earlier tests) never finish.
        self.run_coro(asyncio.gather(*asking, return_exceptions=True))
        self.settle()
        return query

    def notices(self) -> list[ET.Element]:
        """Chat messages the gateway sent since (the room's join answers dropped)."""
        found = []
        while True:
            raw = self.xmpp.socket.next_sent()  # type: ignore[union-attr]
            if raw is None:
                return found
            text = raw if isinstance(raw, str) else raw.decode()
            if text.startswith("<message") and 'type="chat"' in text:
                found.append(ET.fromstring(text))


def version(name: str, number: str, os: str = "Android 14") -> str:
    return f'<query xmlns="{VERSION_NS}"><name>{name}</name><version>{number}</version><os>{os}</os></query>'


class TestNotify(ClientVersionTest):
    @pytest.mark.requirement("I.13", "IV.9")
    def test_outdated_conversations_is_asked_flagged_and_notified_without_content(self) -> None:
        query = self.join_answering(f"{ALICE}/phone", "Alice", version("Conversations", "2.10.0"))
        assert query is not None
        assert (query.get("to"), query.get("from"), query.get("type")) == (
            f"{ALICE}/phone",
            COMPONENT,
            "get",
        )
        (notice,) = self.notices()
        assert (notice.get("from"), notice.get("to")) == (COMPONENT, f"{ALICE}/phone")
        assert [child.tag.rsplit("}", 1)[-1] for child in notice] == ["body"]
        assert notice[0].text == (
            "Your messaging app or operating system is older than the hospital's minimum "
            "(client Conversations 2.10.0 < 2.16). Please update it; outdated software "
            "no longer receives security fixes."
        )
        (recorded,) = self.run_coro(self.sessions.of(ALICE))
        assert recorded.outdated and recorded.software.caps_node == "http://conversations.im"
        assert recorded.software.os == "Android 14"

    @pytest.mark.requirement("I.13")
    def test_in_notify_mode_an_outdated_client_still_sends(self) -> None:
        self.join_answering(f"{ALICE}/phone", "Alice", version("Conversations", "2.10.0"))
        self.drain()
        self.recv_settled(OMEMO_MESSAGE)
        self.send(relayed(f"{ALICE}/phone"))

    @pytest.mark.requirement("I.13")
    def test_an_up_to_date_client_gets_no_notice(self) -> None:
        assert (
            self.join_answering(f"{BOB}/pc", "Bob", version("Conversations", "2.16.0")) is not None
        )
        assert self.notices() == []
        (recorded,) = self.run_coro(self.sessions.of(BOB))
        assert not recorded.outdated

    def test_a_client_that_does_not_answer_is_not_flagged(self) -> None:
        error = '<error type="cancel"><service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>'
        self.recv(
            f'<presence from="{BOB}/pc" to="{WARD}/Bob"><x xmlns="http://jabber.org/protocol/muc"/></presence>'
        )
        self.run_coro(asyncio.sleep(0.05))
        asking = list(self.versions._asking.values())
        self._waited_on.update(asking)
        self.settle()
        query = self.sent_until_version_query()
        assert query is not None
        self.recv(
            f'<iq type="error" from="{BOB}/pc" to="{COMPONENT}" id="{query.get("id")}">{error}</iq>'
        )
        # Only the version queries: other tasks pending on the shared loop (waiters left
        # by earlier tests) never finish.
        self.run_coro(asyncio.gather(*asking, return_exceptions=True))
        assert self.notices() == []
        (recorded,) = self.run_coro(self.sessions.of(BOB))
        assert not recorded.outdated and recorded.software.name == ""

    def test_a_non_member_is_not_asked(self) -> None:
        assert (
            self.join_answering(f"{EVE}/phone", "Eve", version("Conversations", "2.10.0")) is None
        )


class TestRefuse(ClientVersionTest):
    outdated = "refuse"

    @pytest.mark.requirement("I.13", "III.2", "IV.9")
    def test_outdated_client_is_refused_with_the_reason_until_it_updates(self) -> None:
        self.join_answering(f"{ALICE}/phone", "Alice", version("Conversations", "2.10.0"))
        (notice,) = self.notices()
        assert (notice[0].text or "").endswith(
            "Until then your messages to care threads are refused."
        )
        self.recv_settled(OMEMO_MESSAGE)
        error = self.expect_error(f"{ALICE}/phone", WARD, "policy-violation", "m1")
        assert REFUSAL_TEXT in ET.tostring(error, encoding="unicode")
        assert self.archived_count() == 0
        # rejoining with the updated app lifts the refusal
        self.recv_settled(f'<presence from="{ALICE}/phone" to="{WARD}/Alice" type="unavailable"/>')
        self.drain()
        self.join_answering(f"{ALICE}/phone", "Alice", version("Conversations", "2.17.1"))
        self.drain()
        self.recv_settled(OMEMO_MESSAGE)
        self.send(relayed(f"{ALICE}/phone"))

    def archived_count(self) -> int:
        from xmpp_clinic.archive.messages import ArchiveQuery

        return len(self.run_coro(self.archive.query(ArchiveQuery(thread_id=1))).entries)
