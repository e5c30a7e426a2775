# ruff: noqa: E501  (literal XML reads best on one line)
"""MAM (XEP-0313) on a thread: results, RSM paging edge cases, membership windows (IV.2)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from tests.unit.harness import STANZAS
from tests.unit.threads_stanza_base import (
    ALICE,
    BOB,
    EVE,
    WARD,
    ThreadStanzaTest,
    oid,
    with_ward,
)
from xmpp_clinic.archive.messages import MessageArchive, NewMessage
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.xmpp.errors import STORE_DOWN

pytestmark = pytest.mark.requirement("II.4", "IV.2")

MAM = "urn:xmpp:mam:2"
RSM = "http://jabber.org/protocol/rsm"
T0 = datetime(2030, 1, 1, 8, 0, tzinfo=UTC)


def archived(n: int, sender: str) -> str:
    return (
        f'<message from="{WARD}/{sender[:3]}" type="groupchat" id="m{n}"><body>enc</body>'
        f'<stanza-id xmlns="urn:xmpp:sid:0" id="s{n}" by="{WARD}"/></message>'
    )


async def with_history(store: Store) -> None:
    """Thread ``ward`` and five messages, one minute apart, alternating Alice and Bob."""
    await with_ward(store)
    archive = MessageArchive(store)
    for n in range(1, 6):
        sender = ALICE if n % 2 else BOB
        at = T0 + timedelta(minutes=n)
        item = NewMessage(
            1, f"s{n}", at, sender, "phone", sender[:3], oid(sender), archived(n, sender)
        )
        await archive.append(item)


class MamTest(ThreadStanzaTest):
    seed = staticmethod(with_history)

    def query(
        self, who: str = ALICE, form: str = "", rsm: str = "", qid: str = "q"
    ) -> list[ET.Element]:
        x = (
            f'<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>{MAM}</value></field>{form}</x>'
            if form
            else ""
        )
        self.recv_settled(
            f'<iq type="set" id="iq1" from="{who}/pc" to="{WARD}"><query xmlns="{MAM}" queryid="{qid}">{x}{rsm}</query></iq>'
        )
        sent: list[ET.Element] = []
        while True:
            stanza = self.next_sent()
            sent.append(stanza)
            if stanza.tag.endswith("iq"):
                return sent

    @staticmethod
    def ids(sent: list[ET.Element]) -> list[str]:
        return [r.get("id", "") for s in sent[:-1] for r in s.iter(f"{{{MAM}}}result")]

    @staticmethod
    def fin(sent: list[ET.Element]) -> tuple[bool, str | None, str | None, str | None]:
        fin = sent[-1].find(f"{{{MAM}}}fin")
        assert fin is not None
        return (
            fin.get("complete") == "true",
            fin.findtext(f"{{{RSM}}}set/{{{RSM}}}first"),
            fin.findtext(f"{{{RSM}}}set/{{{RSM}}}last"),
            fin.findtext(f"{{{RSM}}}set/{{{RSM}}}count"),
        )


class TestMamAllHistory(MamTest):
    history = "all"

    def test_result_carries_the_relayed_stanza_delay_and_real_jid(self) -> None:
        sent = self.query(rsm=f'<set xmlns="{RSM}"><max>1</max></set>')
        assert len(sent) == 2
        self.check(
            self.xmpp._build_stanza(sent[0]),
            f"""<message xmlns="jabber:component:accept" from="{WARD}" to="{ALICE}/pc" id="{sent[0].get("id")}">
              <result xmlns="{MAM}" queryid="q" id="s1"><forwarded xmlns="urn:xmpp:forward:0">
                <delay xmlns="urn:xmpp:delay" stamp="2030-01-01T08:01:00Z"/>
                <message xmlns="jabber:client" from="{WARD}/ali" type="groupchat" id="m1"><body>enc</body>
                  <stanza-id xmlns="urn:xmpp:sid:0" id="s1" by="{WARD}"/>
                  <seq xmlns="urn:xmpp-clinic:seq:0" n="1"/>
                  <x xmlns="http://jabber.org/protocol/muc#user"><item affiliation="member" role="none" jid="{ALICE}/phone"/></x>
                </message></forwarded></result></message>""",
            use_values=False,
        )
        assert self.fin(sent) == (False, "s1", "s1", "5")

    def test_forward_paging_ends_with_complete(self) -> None:
        first = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max></set>')
        assert self.ids(first) == ["s1", "s2"] and self.fin(first)[0] is False
        second = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max><after>s2</after></set>')
        assert self.ids(second) == ["s3", "s4"] and self.fin(second)[0] is False
        last = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max><after>s4</after></set>')
        assert self.ids(last) == ["s5"] and self.fin(last) == (True, "s5", "s5", "5")

    def test_exact_page_boundary_is_complete_without_an_empty_extra_page(self) -> None:
        sent = self.query(rsm=f'<set xmlns="{RSM}"><max>5</max></set>')
        assert self.ids(sent) == ["s1", "s2", "s3", "s4", "s5"] and self.fin(sent)[0] is True

    def test_backward_paging_from_the_end(self) -> None:
        last = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max><before/></set>')
        assert self.ids(last) == ["s4", "s5"] and self.fin(last)[0] is False
        earlier = self.query(rsm=f'<set xmlns="{RSM}"><max>3</max><before>s4</before></set>')
        assert self.ids(earlier) == ["s1", "s2", "s3"] and self.fin(earlier)[0] is True

    def test_after_the_last_id_is_an_empty_complete_page(self) -> None:
        sent = self.query(rsm=f'<set xmlns="{RSM}"><after>s5</after></set>')
        assert self.ids(sent) == [] and self.fin(sent) == (True, None, None, "5")

    def test_max_zero_returns_only_the_count(self) -> None:
        sent = self.query(rsm=f'<set xmlns="{RSM}"><max>0</max></set>')
        assert self.ids(sent) == [] and self.fin(sent)[3] == "5"

    def test_a_result_set_larger_than_the_count_cap_pages_without_a_count(self) -> None:
        """Above COUNT_CAP the exact count would scan the whole archive per page (issue 13):
        the page is served, keyset-paged, and <count/> is left out (optional in XEP-0059)."""
        with mock.patch("xmpp_clinic.archive.messages.COUNT_CAP", 4):
            sent = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max><before/></set>')
            assert self.ids(sent) == ["s4", "s5"] and self.fin(sent) == (False, "s4", "s5", None)
        with mock.patch("xmpp_clinic.archive.messages.COUNT_CAP", 5):
            sent = self.query(rsm=f'<set xmlns="{RSM}"><max>2</max><before/></set>')
            assert self.fin(sent)[3] == "5"

    def test_unknown_paging_id_is_item_not_found(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq9" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}"><set xmlns="{RSM}"><after>nope</after></set></query></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "item-not-found", "iq9")

    def test_form_filters_with_start_end_ids_and_exclusive_bounds(self) -> None:
        with_bob = self.query(form=f'<field var="with"><value>{BOB}</value></field>')
        assert self.ids(with_bob) == ["s2", "s4"]
        window = self.query(
            form='<field var="start"><value>2030-01-01T08:02:00Z</value></field><field var="end"><value>2030-01-01T08:04:00Z</value></field>'
        )
        assert self.ids(window) == ["s2", "s3", "s4"]
        by_ids = self.query(form='<field var="ids"><value>s5</value><value>s1</value></field>')
        assert self.ids(by_ids) == ["s1", "s5"]
        between = self.query(
            form='<field var="after-id"><value>s1</value></field><field var="before-id"><value>s4</value></field>'
        )
        assert self.ids(between) == ["s2", "s3"]

    def test_malformed_with_is_bad_request(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}">'
            f'<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>{MAM}</value></field>'
            '<field var="with"><value>a@b@c</value></field></x></query></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "bad-request", "iq1")

    def test_timestamp_out_of_range_in_utc_is_bad_request(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}">'
            f'<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>{MAM}</value></field>'
            '<field var="start"><value>0001-01-01T00:00:00+01:00</value></field></x></query></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "bad-request", "iq1")

    def test_form_lists_the_fields_this_archive_understands(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="f1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}"/></iq>'
        )
        self.send(f"""
          <iq type="result" id="f1" from="{WARD}" to="{ALICE}/pc">
            <query xmlns="{MAM}"><x xmlns="jabber:x:data" type="form">
              <field var="FORM_TYPE" type="hidden"><value>{MAM}</value></field>
              <field var="start" type="text-single"/><field var="end" type="text-single"/>
              <field var="with" type="jid-single"/><field var="before-id" type="text-single"/>
              <field var="after-id" type="text-single"/><field var="ids" type="text-multi"/>
            </x></query>
          </iq>""")

    def test_fin_carries_complete_and_the_result_set(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}" queryid="q">'
            f'<set xmlns="{RSM}"><max>2</max><after>s3</after></set></query></iq>'
        )
        self.drain_results()
        self.send(f"""
          <iq type="result" id="iq1" from="{WARD}" to="{ALICE}/pc">
            <fin xmlns="{MAM}" complete="true">
              <set xmlns="{RSM}"><first>s4</first><last>s5</last><count>5</count></set>
            </fin>
          </iq>""")

    def test_malformed_rsm_max_is_bad_request(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}">'
            f'<set xmlns="{RSM}"><max>many</max></set></query></iq>'
        )
        self.expect_error(f"{ALICE}/pc", WARD, "bad-request", "iq1")

    def test_unavailable_store_says_wait_and_try_again(self) -> None:
        with mock.patch.object(self.archive, "query", side_effect=StoreUnavailable("down")):
            self.recv_settled(
                f'<iq type="set" id="iq1" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}"/></iq>'
            )
        sent = self.expect_error(f"{ALICE}/pc", WARD, "internal-server-error", "iq1")
        error = next(child for child in sent if child.tag.endswith("}error"))
        assert error.get("type") == "wait"
        assert error.findtext(f"{{{STANZAS}}}text") == STORE_DOWN

    def drain_results(self) -> None:
        """Drop the result messages before the final iq."""
        socket = self.xmpp.socket
        self.settle()
        while socket.send_queue.qsize() > 1:
            socket.next_sent()

    def test_non_member_cannot_query(self) -> None:
        self.recv_settled(
            f'<iq type="set" id="iq2" from="{EVE}/pc" to="{WARD}"><query xmlns="{MAM}"/></iq>'
        )
        self.expect_error(f"{EVE}/pc", WARD, "item-not-found", "iq2")

    def test_removed_member_loses_history_at_once(self) -> None:
        self.run_coro(self.service.remove_member("ward", BOB))
        self.recv_settled(
            f'<iq type="set" id="iq3" from="{BOB}/pc" to="{WARD}"><query xmlns="{MAM}"/></iq>'
        )
        self.drain_until_error(f"{BOB}/pc", "iq3")

    def drain_until_error(self, to: str, iq_id: str) -> None:
        # Removal announcements come first; then the refusal.
        while True:
            sent = self.next_sent()
            if sent.get("id") == iq_id:
                assert sent.get("type") == "error" and sent.get("to") == to
                assert "item-not-found" in ET.tostring(sent).decode()
                return


class TestMamMembershipWindow(MamTest):
    history = "none"

    def test_new_member_sees_only_messages_since_joining(self) -> None:
        self.run_coro(self.service.add_member("ward", EVE))
        self.run_coro(self.host.reload())
        self.drain()
        thread = self.host.book.get("ward")
        assert thread is not None
        alice, eve = thread.member(ALICE), thread.member(EVE)
        assert alice is not None and eve is not None and alice.since < eve.since
        between = alice.since + (eve.since - alice.since) / 2
        item = NewMessage(1, "s0", between, BOB, "pc", "bob", oid(BOB), archived(0, BOB))
        self.run_coro(self.archive.append(item))
        assert "s0" in self.ids(self.query(who=ALICE))
        assert self.ids(self.query(who=EVE)) == ["s1", "s2", "s3", "s4", "s5"]

    def test_member_does_not_see_messages_from_before_membership(self) -> None:
        before = datetime(2000, 1, 1, tzinfo=UTC)
        item = NewMessage(1, "s0", before, BOB, "pc", "bob", oid(BOB), archived(0, BOB))
        self.run_coro(self.archive.append(item))
        assert "s0" not in self.ids(self.query())
        assert self.run_coro(self.archive.verify(1)) is None

    def test_an_id_from_before_membership_answers_like_an_unknown_id(self) -> None:
        # Issue 8 finding 11: no existence oracle for messages from before one joined.
        before = datetime(2000, 1, 1, tzinfo=UTC)
        item = NewMessage(1, "s0", before, BOB, "pc", "bob", oid(BOB), archived(0, BOB))
        self.run_coro(self.archive.append(item))
        answers: list[str] = []
        form = f'<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>{MAM}</value></field>'
        shapes = (
            f'<set xmlns="{RSM}"><after>{{}}</after></set>',
            f'<set xmlns="{RSM}"><before>{{}}</before></set>',
            form + '<field var="after-id"><value>{}</value></field></x>',
            form + '<field var="before-id"><value>{}</value></field></x>',
        )
        requests = [shape.format(pid) for pid in ("s0", "never-existed") for shape in shapes]
        for n, rsm in enumerate(requests):
            self.recv_settled(
                f'<iq type="set" id="o{n}" from="{ALICE}/pc" to="{WARD}"><query xmlns="{MAM}">{rsm}</query></iq>'
            )
            sent = self.expect_error(f"{ALICE}/pc", WARD, "item-not-found", f"o{n}")
            sent.set("id", "")
            answers.append(ET.tostring(sent).decode())
            self.send(None)  # no result messages before the error
        assert len(set(answers)) == 1  # byte for byte the same answer for both kinds


AXOLOTL = "eu.siacs.conversations.axolotl"


def encrypted(n: int) -> str:
    keys = "".join(f'<key rid="{rid}">K</key>' for rid in (11, 21, 12, 99))
    return (
        f'<message from="{WARD}/ali" type="groupchat" id="m{n}"><body>enc</body>'
        f'<encrypted xmlns="{AXOLOTL}"><header sid="10">{keys}<iv>SVY=</iv></header><payload>UA==</payload></encrypted>'
        f'<stanza-id xmlns="urn:xmpp:sid:0" id="s{n}" by="{WARD}"/></message>'
    )


async def with_encrypted_history(store: Store) -> None:
    await with_ward(store)
    archive = MessageArchive(store)
    for n in (1, 2):
        item = NewMessage(1, f"s{n}", T0, ALICE, "phone", "ali", oid(ALICE), encrypted(n))
        await archive.append(item)


class Devices:
    async def snapshot(self, persons: object = ()) -> Devices:
        return self

    def usable_ids(self, jid: str, namespace: str, now: object) -> frozenset[int]:
        assert namespace == AXOLOTL
        return frozenset({ALICE: {11, 12}, BOB: {21}}.get(jid, set()))


class TestMamTrimmed(MamTest):
    """Issue 13: MAM results carry only the asking member's keys, all of them (II.3)."""

    history = "all"
    seed = staticmethod(with_encrypted_history)

    def setUp(self) -> None:
        super().setUp()
        from xmpp_clinic.xmpp.mam import ThreadArchive

        self.xmpp.remove_handler("ThreadMAM")
        ThreadArchive(self.host, self.archive, devices=Devices()).attach()

    def rids(self, who: str) -> list[list[str | None]]:
        sent = self.query(who=who)
        return [[k.get("rid") for k in s.iter(f"{{{AXOLOTL}}}key")] for s in sent[:-1]]

    def test_each_member_gets_every_key_of_their_own_devices_only(self) -> None:
        assert self.rids(ALICE) == [["11", "12"], ["11", "12"]]
        assert self.rids(BOB) == [["21"], ["21"]]

    def test_results_keep_header_fields_and_carry_the_seq(self) -> None:
        sent = self.query(who=BOB)
        for n, stanza in enumerate(sent[:-1], 1):
            header = stanza.find(f".//{{{AXOLOTL}}}header")
            assert header is not None and header.get("sid") == "10"
            assert header.findtext(f"{{{AXOLOTL}}}iv") == "SVY="
            assert [s.get("n") for s in stanza.iter("{urn:xmpp-clinic:seq:0}seq")] == [str(n)]
