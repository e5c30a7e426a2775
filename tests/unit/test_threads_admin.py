# ruff: noqa: E501  (literal XML reads best on one line)
"""Member lists, room configuration and discovery of care threads (XEP-0045 9/10, XEP-0030)."""

from __future__ import annotations

from unittest import mock

import pytest

from tests.unit.harness import COMPONENT, STANZAS
from tests.unit.threads_stanza_base import ALICE, BOB, CAROL, EVE, WARD, ThreadStanzaTest
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.store import StoreUnavailable

pytestmark = pytest.mark.requirement("IV.2")

ADMIN = "http://jabber.org/protocol/muc#admin"
OWNER = "http://jabber.org/protocol/muc#owner"
INFO = "http://jabber.org/protocol/disco#info"
ITEMS = "http://jabber.org/protocol/disco#items"


class TestMemberLists(ThreadStanzaTest):
    def ask(self, who: str, affiliation: str, iq_id: str = "a1") -> None:
        self.recv_settled(
            f'<iq type="get" id="{iq_id}" from="{who}/pc" to="{WARD}">'
            f'<query xmlns="{ADMIN}"><item affiliation="{affiliation}"/></query></iq>'
        )

    def test_any_member_gets_the_complete_member_list_with_real_jids(self) -> None:
        self.ask(ALICE, "member")
        self.send(f"""
          <iq type="result" id="a1" from="{WARD}" to="{ALICE}/pc">
            <query xmlns="{ADMIN}">
              <item affiliation="member" jid="{ALICE}"/>
              <item affiliation="member" jid="{BOB}"/>
            </query>
          </iq>""")

    def test_owner_and_empty_admin_lists(self) -> None:
        self.ask(BOB, "owner")
        self.send(f"""
          <iq type="result" id="a1" from="{WARD}" to="{BOB}/pc">
            <query xmlns="{ADMIN}"><item affiliation="owner" jid="{CAROL}"/></query>
          </iq>""")
        self.ask(BOB, "admin", "a2")
        self.send(
            f'<iq type="result" id="a2" from="{WARD}" to="{BOB}/pc"><query xmlns="{ADMIN}"/></iq>'
        )

    def test_non_member_gets_item_not_found(self) -> None:
        self.ask(EVE, "member")
        self.expect_error(f"{EVE}/pc", WARD, "item-not-found", "a1")

    def test_member_cannot_change_affiliations(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            f'<item affiliation="member" jid="{EVE}"/></query></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "forbidden", "s1")
        assert self.host.book.affiliation("ward", EVE) is None

    def test_owner_adds_a_member_and_the_list_shows_it(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            f'<item affiliation="member" jid="{EVE}"/></query></iq>'
        )
        self.settle()
        assert self.host.book.affiliation("ward", EVE) == "member"
        sent = [self.next_sent() for _ in range(5)]  # the announcements, then the result
        assert [s.get("to") for s in sent] == [ALICE, BOB, CAROL, EVE, f"{CAROL}/pc"]
        assert sent[-1].get("type") == "result"

    def test_owner_cannot_add_someone_from_another_domain(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            '<item affiliation="member" jid="mallory@elsewhere.test"/></query></iq>'
        )
        sent = self.expect_error(f"{CAROL}/pc", WARD, "not-acceptable", "s1")
        assert "hospital.test" in (sent.findtext(f".//{{{STANZAS}}}text") or "")
        assert self.host.book.affiliation("ward", "mallory@elsewhere.test") is None

    def test_malformed_item_jid_is_jid_malformed(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            '<item affiliation="member" jid="a@b@c"/></query></iq>'
        )
        self.expect_error(f"{CAROL}/pc", WARD, "jid-malformed", "s1")

    def test_owner_change_names_the_owner_in_the_audit_log(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            f'<item affiliation="admin" jid="{BOB}"/></query></iq>'
        )
        self.drain()
        events = self.run_coro(AuditLog(self.store).events(subject="ward"))
        changed = [e for e in events if e.action == "thread.member-changed"]
        assert [(e.actor, e.reason, e.note) for e in changed] == [
            (f"xmpp:{CAROL}", "member-to-admin", BOB)
        ]

    def test_owner_cannot_make_the_thread_public_or_anonymous(self) -> None:
        for var, value in (
            ("muc#roomconfig_membersonly", "0"),
            ("muc#roomconfig_whois", "moderators"),
        ):
            self.recv_settled(f"""
              <iq type="set" id="c1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{OWNER}">
                <x xmlns="jabber:x:data" type="submit">
                  <field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>
                  <field var="{var}"><value>{value}</value></field>
                </x></query></iq>""")
            self.expect_error(f"{CAROL}/pc", WARD, "not-acceptable", "c1")

    def test_owner_sees_the_configuration_and_what_is_fixed(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="c3" from="{CAROL}/pc" to="{WARD}"><query xmlns="{OWNER}"/></iq>'
        )
        fields = "".join(
            f'<field var="muc#roomconfig_{var}" type="{ftype}"><value>{value}</value></field>'
            for var, ftype, value in (
                ("roomname", "text-single", "Ward 3"), ("membersonly", "boolean", "1"),
                ("whois", "list-single", "anyone"), ("publicroom", "boolean", "0"),
                ("persistentroom", "boolean", "1"), ("passwordprotectedroom", "boolean", "0"),
                ("allowpm", "list-single", "none"), ("enablearchiving", "boolean", "1"),
            )
        )  # fmt: skip
        self.send(f"""
          <iq type="result" id="c3" from="{WARD}" to="{CAROL}/pc">
            <query xmlns="{OWNER}"><x xmlns="jabber:x:data" type="form">
              <field var="FORM_TYPE" type="hidden">
                <value>http://jabber.org/protocol/muc#roomconfig</value>
              </field>{fields}
            </x></query>
          </iq>""")

    def test_owner_renames_the_thread_and_is_named_in_the_audit_log(self) -> None:
        self.recv_settled(f"""
          <iq type="set" id="c4" from="{CAROL}/pc" to="{WARD}"><query xmlns="{OWNER}">
            <x xmlns="jabber:x:data" type="submit">
              <field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>
              <field var="muc#roomconfig_roomname"><value>Ward 3 (night)</value></field>
              <field var="muc#roomconfig_membersonly" type="boolean"><value>true</value></field>
            </x></query></iq>""")
        self.send(f'<iq type="result" id="c4" from="{WARD}" to="{CAROL}/pc"/>')
        thread = self.host.book.get("ward")
        assert thread is not None and thread.title == "Ward 3 (night)"
        events = self.run_coro(AuditLog(self.store).events(subject="ward"))
        assert [e.actor for e in events if e.action == "thread.title-changed"] == [f"xmpp:{CAROL}"]

    def test_a_title_over_the_limit_is_refused_and_the_limit_is_said(self) -> None:
        self.recv_settled(f"""
          <iq type="set" id="c9" from="{CAROL}/pc" to="{WARD}"><query xmlns="{OWNER}">
            <x xmlns="jabber:x:data" type="submit">
              <field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>
              <field var="muc#roomconfig_roomname"><value>{"W" * 100_000}</value></field>
            </x></query></iq>""")
        sent = self.expect_error(f"{CAROL}/pc", WARD, "not-acceptable", "c9")
        assert (
            sent.findtext(f".//{{{STANZAS}}}text") == "A thread title has at most 200 characters."
        )
        thread = self.host.book.get("ward")
        assert thread is not None and thread.title == "Ward 3"

    def test_owners_cannot_destroy_a_thread(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="c5" from="{CAROL}/pc" to="{WARD}"><query xmlns="{OWNER}">'
            "<destroy><reason>done</reason></destroy></query></iq>"
        )
        self.expect_error(f"{CAROL}/pc", WARD, "forbidden", "c5")

    def test_member_list_with_the_store_down_says_wait(self) -> None:
        with mock.patch.object(self.service, "list", side_effect=StoreUnavailable("down")):
            self.ask(ALICE, "member")
        sent = self.expect_error(f"{ALICE}/pc", WARD, "internal-server-error", "a1")
        error = next(child for child in sent if child.tag.endswith("}error"))
        assert error.get("type") == "wait"

    def test_members_cannot_configure(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="c2" from="{ALICE}/pc" to="{WARD}"><query xmlns="{OWNER}"/></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "forbidden", "c2")


class TestWithoutUserDomains(ThreadStanzaTest):
    """``xmpp.user_domains`` left empty: nobody can be added (fails closed, IV.2, I.12)."""

    user_domains = ()

    def test_owner_cannot_add_anyone(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            f'<item affiliation="member" jid="{EVE}"/></query></iq>'
        )
        sent = self.expect_error(f"{CAROL}/pc", WARD, "not-acceptable", "s1")
        assert "xmpp.user_domains" in (sent.findtext(f".//{{{STANZAS}}}text") or "")
        assert self.host.book.affiliation("ward", EVE) is None

    def test_owner_can_still_remove_a_member(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="s1" from="{CAROL}/pc" to="{WARD}"><query xmlns="{ADMIN}">'
            f'<item affiliation="none" jid="{BOB}"/></query></iq>'
        )
        assert self.host.book.affiliation("ward", BOB) is None


class TestDiscovery(ThreadStanzaTest):
    def test_component_lists_only_the_requesters_threads(self) -> None:
        self.run_coro(self.service.create("icu", "ICU", [BOB]))
        self.run_coro(self.host.reload())
        self.drain()  # the new thread's membership announcements
        self.recv_settled(
            f'<iq type="get" id="d1" from="{ALICE}/pc" to="{COMPONENT}"><query xmlns="{ITEMS}"/></iq>'
        )
        self.send(f"""
          <iq type="result" id="d1" from="{COMPONENT}" to="{ALICE}/pc">
            <query xmlns="{ITEMS}"><item jid="{WARD}" name="Ward 3"/></query>
          </iq>""")
        self.recv_settled(
            f'<iq type="get" id="d2" from="{EVE}/pc" to="{COMPONENT}"><query xmlns="{ITEMS}"/></iq>'
        )
        self.send(
            f'<iq type="result" id="d2" from="{COMPONENT}" to="{EVE}/pc"><query xmlns="{ITEMS}"/></iq>'
        )

    def test_thread_info_advertises_what_omemo_clients_need(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="i1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{INFO}"/></iq>'
        )
        sent = self.next_sent()
        query = sent.find(f"{{{INFO}}}query")
        assert query is not None
        features = {f.get("var") for f in query.findall(f"{{{INFO}}}feature")}
        for needed in (
            "http://jabber.org/protocol/muc", "muc_membersonly", "muc_nonanonymous",
            "muc_persistent", "muc_hidden", "urn:xmpp:mam:2", "urn:xmpp:sid:0",
            "urn:xmpp:occupant-id:0", "http://jabber.org/protocol/muc#stable_id",
        ):  # fmt: skip
            assert needed in features
        assert "muc_public" not in features and "muc_semianonymous" not in features
        identity = query.find(f"{{{INFO}}}identity")
        assert identity is not None and identity.attrib == {
            "category": "conference", "type": "text", "name": "Ward 3"
        }  # fmt: skip
        fields = {
            f.get("var"): f.findtext("{jabber:x:data}value")
            for f in query.iter("{jabber:x:data}field")
        }
        assert fields["FORM_TYPE"] == "http://jabber.org/protocol/muc#roominfo"
        assert fields["muc#roomconfig_whois"] == "anyone"

    def test_non_member_learns_nothing_about_the_thread(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="i2" from="{EVE}/pc" to="{WARD}"><query xmlns="{INFO}"/></iq>'
        )
        sent = self.expect_error(f"{EVE}/pc", WARD, "item-not-found", "i2")
        assert b"Ward 3" not in __import__("xml.etree.ElementTree").etree.ElementTree.tostring(sent)
        self.recv_settled(
            f'<iq type="get" id="i3" from="{EVE}/pc" to="nosuch@{COMPONENT}"><query xmlns="{INFO}"/></iq>'
        )
        self.expect_error(f"{EVE}/pc", f"nosuch@{COMPONENT}", "item-not-found", "i3")

    def test_disco_of_unknown_threads_does_not_read_the_store(self) -> None:
        with mock.patch.object(self.service, "list", wraps=self.service.list) as reads:
            for n in range(3):
                self.recv_settled(
                    f'<iq type="get" id="p{n}" from="{EVE}/pc" to="probe{n}@{COMPONENT}"><query xmlns="{INFO}"/></iq>'
                )
                self.expect_error(f"{EVE}/pc", f"probe{n}@{COMPONENT}", "item-not-found", f"p{n}")
        assert reads.call_count == 0
