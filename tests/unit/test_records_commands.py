# ruff: noqa: E501  (literal XML reads best on one line)
"""Documenting a thread over XMPP: the ad-hoc command, the member list, the room notice (I.6)."""

from __future__ import annotations

import pytest

from tests.unit.test_threads_commands import CommandTest
from tests.unit.threads_stanza_base import ALICE, CAROL, COMPONENT, WARD
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.threads import ThreadService
from xmpp_clinic.xmpp.records_flags import (
    NOTICE_OFF,
    NOTICE_ON,
    DocumentationNotices,
    RecordsCommands,
)

RECORDS = f"records@{COMPONENT}"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"


class DocumentedCommandTest(CommandTest):
    def setUp(self) -> None:
        super().setUp()
        self.host.service = ThreadService(
            self.store, user_domains=self.user_domains, records_jid=RECORDS
        )
        RecordsCommands(self.host).attach()
        self.notices = DocumentationNotices(self.host)
        self.run_coro(self.notices.check())  # the first look remembers, says nothing

    def set_documented(self, state: str) -> str:
        self.execute(CAROL, "set-documented")
        session = self.session_of_form()
        self.submit(
            CAROL, "set-documented", session,
            f'<field var="thread"><value>ward</value></field><field var="state"><value>{state}</value></field>',
        )  # fmt: skip
        return self.drain_to_result()

    def members_seen_by_alice(self) -> set[str]:
        self.recv_settled(
            f'<iq type="get" id="m1" from="{ALICE}/phone" to="{WARD}"><query xmlns="{MUC_ADMIN}"><item affiliation="member"/></query></iq>'
        )
        answer = self.next_sent()
        return {i.get("jid", "") for i in answer.iter(f"{{{MUC_ADMIN}}}item")}

    def bodies_to_alice(self) -> list[str]:
        self.run_coro(self.notices.check())  # the gateway runs it on every "threads" change
        self.settle()
        bodies = []
        while (sent := self.xmpp.socket.next_sent()) is not None:  # type: ignore[union-attr]
            text = sent if isinstance(sent, str) else sent.decode()
            if f'to="{ALICE}/phone"' in text and "<body>" in text:
                bodies.append(text.split("<body>", 1)[1].split("</body>", 1)[0])
        return bodies

    @pytest.mark.requirement("I.6")
    def test_admin_documents_a_thread_and_members_are_told(self) -> None:
        self.join(f"{ALICE}/phone", "alice")
        note = self.set_documented("on")
        assert note == "ward is documented in the patient record."
        assert self.bodies_to_alice() == [NOTICE_ON]
        assert RECORDS in self.members_seen_by_alice()

    @pytest.mark.requirement("I.6")
    def test_turning_it_off_removes_the_member_and_says_so(self) -> None:
        self.set_documented("on")
        self.run_coro(self.notices.check())
        self.join(f"{ALICE}/phone", "alice")
        assert self.set_documented("off") == "ward is not documented."
        assert self.bodies_to_alice() == [NOTICE_OFF]
        assert RECORDS not in self.members_seen_by_alice()

    @pytest.mark.requirement("I.6", "IV.4")
    def test_the_change_is_audited_with_the_admin_as_actor(self) -> None:
        self.set_documented("on")
        events = self.run_coro(AuditLog(self.store).events(subject="ward"))
        flags = [(e.actor, e.reason) for e in events if e.action == "thread.documented"]
        assert flags == [(f"xmpp:{CAROL}", "on")]

    @pytest.mark.requirement("I.6")
    def test_members_cannot_document_threads(self) -> None:
        self.execute(ALICE, "set-documented")
        self.expect_error(f"{ALICE}/pc", COMPONENT, "forbidden", "c1")
