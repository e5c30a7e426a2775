# ruff: noqa: E501  (literal XML reads best on one line)
"""XEP-0050 ad-hoc commands: admins manage threads, everyone may open a direct thread (IV.2)."""

from __future__ import annotations

from unittest import mock

import pytest

from tests.unit.threads_stanza_base import ALICE, BOB, CAROL, COMPONENT, EVE, ThreadStanzaTest
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import direct_name

pytestmark = pytest.mark.requirement("IV.2")

CMD = "http://jabber.org/protocol/commands"


class CommandTest(ThreadStanzaTest):
    """Execute, submit, and read the result of ad-hoc commands."""

    def execute(self, who: str, node: str, iq_id: str = "c1") -> None:
        self.recv_settled(
            f'<iq type="set" id="{iq_id}" from="{who}/pc" to="{COMPONENT}"><command xmlns="{CMD}" node="{node}" action="execute"/></iq>'
        )

    def submit(self, who: str, node: str, session: str, fields: str) -> None:
        self.recv_settled(
            f'<iq type="set" id="c2" from="{who}/pc" to="{COMPONENT}"><command xmlns="{CMD}" node="{node}" sessionid="{session}" action="complete">'
            f'<x xmlns="jabber:x:data" type="submit">{fields}</x></command></iq>'
        )

    def session_of_form(self) -> str:
        sent = self.next_sent()
        command = sent.find(f"{{{CMD}}}command")
        assert sent.get("type") == "result" and command is not None
        assert command.get("status") == "executing"
        assert command.find("{jabber:x:data}x") is not None
        return command.get("sessionid", "")

    def drain_to_result(self, note_type: str = "info") -> str:
        """Skip membership announcements; the command's completion note."""
        while True:
            sent = self.next_sent()
            if sent.get("id") == "c2":
                command = sent.find(f"{{{CMD}}}command")
                assert command is not None and command.get("status") == "completed"
                note = command.find(f"{{{CMD}}}note")
                assert note is not None and note.get("type") == note_type
                return note.text or ""


class TestCommands(CommandTest):
    def test_admin_removes_a_member(self) -> None:
        self.execute(CAROL, "remove-member")
        session = self.session_of_form()
        self.submit(
            CAROL,
            "remove-member",
            session,
            f'<field var="thread"><value>ward</value></field><field var="jid"><value>{BOB}</value></field>',
        )
        self.drain_to_result()
        assert self.host.book.affiliation("ward", BOB) is None

    def test_non_admin_cannot_manage_threads(self) -> None:
        self.execute(ALICE, "create-thread")
        self.expect_error(f"{ALICE}/pc", COMPONENT, "forbidden", "c1")

    def test_any_hospital_user_opens_a_direct_thread(self) -> None:
        self.execute(EVE, "start-direct")
        session = self.session_of_form()
        self.submit(
            EVE, "start-direct", session, f'<field var="jid"><value>{ALICE}</value></field>'
        )
        note = self.drain_to_result()
        assert direct_name(EVE, ALICE) in note
        thread = self.host.book.get(direct_name(EVE, ALICE))
        assert thread is not None and thread.member_jids == {EVE, ALICE}

    def test_outsider_cannot_open_a_direct_thread(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="c1" from="mallory@elsewhere.test/x" to="{COMPONENT}"><command xmlns="{CMD}" node="start-direct" action="execute"/></iq>'
        )
        self.expect_error("mallory@elsewhere.test/x", COMPONENT, "forbidden", "c1")

    def test_admin_cannot_add_someone_from_another_domain(self) -> None:
        self.execute(CAROL, "add-member")
        session = self.session_of_form()
        self.submit(
            CAROL,
            "add-member",
            session,
            '<field var="thread"><value>ward</value></field><field var="jid"><value>mallory@elsewhere.test</value></field>',
        )
        assert "hospital.test" in self.drain_to_result("error")
        assert self.host.book.affiliation("ward", "mallory@elsewhere.test") is None

    def test_malformed_colleague_jid_gets_an_error_note(self) -> None:
        self.execute(EVE, "start-direct")
        session = self.session_of_form()
        self.submit(EVE, "start-direct", session, '<field var="jid"><value>a@b@c</value></field>')
        assert "not a valid JID" in self.drain_to_result("error")

    def test_unavailable_store_says_try_again(self) -> None:
        with mock.patch.object(self.service, "list", side_effect=StoreUnavailable("down")):
            self.execute(CAROL, "list-threads", iq_id="c2")
            assert "Try again" in self.drain_to_result("error")

    def test_someone_else_cannot_continue_an_admins_session(self) -> None:
        self.execute(CAROL, "add-member")
        session = self.session_of_form()
        self.submit(
            ALICE,
            "add-member",
            session,
            f'<field var="thread"><value>ward</value></field><field var="jid"><value>{EVE}</value></field>',
        )
        self.expect_error(f"{ALICE}/pc", COMPONENT, "forbidden", "c2")
        assert self.host.book.affiliation("ward", EVE) is None


class TestAdminsInAnyCase(CommandTest):
    """``xmpp.admins`` as an operator typed it: JIDs compare without case (IV.2)."""

    admins = ("Carol@Hospital.Test",)

    def test_admin_listed_in_another_case_may_manage_threads(self) -> None:
        self.execute(CAROL, "create-thread")
        assert self.session_of_form()


class TestWithoutUserDomains(CommandTest):
    """``xmpp.user_domains`` left empty: nobody can be added, the note says why (I.12)."""

    user_domains = ()

    def test_admin_cannot_create_a_thread(self) -> None:
        self.execute(CAROL, "create-thread")
        session = self.session_of_form()
        self.submit(
            CAROL,
            "create-thread",
            session,
            f'<field var="name"><value>icu</value></field><field var="title"><value>ICU</value></field><field var="members"><value>{ALICE}</value></field>',
        )
        assert "set xmpp.user_domains" in self.drain_to_result("error")


class TestCommandDetails(CommandTest):
    def test_admin_change_names_the_admin_in_the_audit_log(self) -> None:
        self.execute(CAROL, "remove-member")
        session = self.session_of_form()
        self.submit(
            CAROL,
            "remove-member",
            session,
            f'<field var="thread"><value>ward</value></field><field var="jid"><value>{BOB}</value></field>',
        )
        self.drain_to_result()
        events = self.run_coro(AuditLog(self.store).events(subject="ward"))
        removed = [e for e in events if e.action == "thread.member-removed"]
        assert [(e.actor, e.note) for e in removed] == [(f"xmpp:{CAROL}", BOB)]

    def test_a_full_jid_is_refused_with_a_note_asking_for_the_bare_one(self) -> None:
        self.execute(EVE, "start-direct")
        session = self.session_of_form()
        self.submit(
            EVE, "start-direct", session, f'<field var="jid"><value>{ALICE}/phone</value></field>'
        )
        assert "bare JID" in self.drain_to_result("error")

    def test_a_missing_field_is_named(self) -> None:
        self.execute(CAROL, "remove-member")
        session = self.session_of_form()
        self.submit(
            CAROL, "remove-member", session, f'<field var="jid"><value>{BOB}</value></field>'
        )
        assert self.drain_to_result("error") == "'thread' is required"
        assert self.host.book.affiliation("ward", BOB) == "member"

    def test_the_form_offers_the_affiliations(self) -> None:
        self.execute(CAROL, "add-member")
        sent = self.next_sent()
        form = sent.find(f"{{{CMD}}}command/{{jabber:x:data}}x")
        assert (
            form is not None and form.findtext("{jabber:x:data}title") == "Add a member to a thread"
        )
        options = [o.findtext("{jabber:x:data}value") for o in form.iter("{jabber:x:data}option")]
        assert options == ["member", "admin", "owner"]

    def test_a_title_beyond_the_limit_names_the_limit(self) -> None:
        """Issue 8.8: a 100 KB title through the ad-hoc command is refused, not stored."""
        self.execute(CAROL, "create-thread")
        session = self.session_of_form()
        title = "x" * 100_000
        self.submit(
            CAROL,
            "create-thread",
            session,
            f'<field var="name"><value>huge</value></field><field var="title"><value>{title}</value></field>',
        )
        assert self.drain_to_result("error") == "'title' is at most 200 characters"
        assert "huge" not in {t.name for t in self.run_coro(self.host.service.list())}

    def test_too_many_members_at_once_are_refused(self) -> None:
        self.execute(CAROL, "create-thread")
        session = self.session_of_form()
        members = "".join(f"<value>m{n}@hospital.test</value>" for n in range(1001))
        self.submit(
            CAROL,
            "create-thread",
            session,
            f'<field var="name"><value>big</value></field><field var="title"><value>Big</value></field><field var="members">{members}</field>',
        )
        assert self.drain_to_result("error") == "'members' takes at most 1000 values"
