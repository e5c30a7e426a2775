"""XEP-0055 search on the component: colleagues found, outsiders refused (I.3, IV.2)."""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from xmpp_clinic.directory.model import Directory, Person
from xmpp_clinic.directory.search import Query, find
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.search import DirectorySearch

ALICE, BOB, CAROL = "alice@hospital.test", "bob@hospital.test", "carol@hospital.test"
DATA = "jabber:x:data"


def directory() -> Directory:
    return Directory(
        [
            Person("1", "Alice Ärztin", "1", "physician", (ALICE,), frozenset({"ward-4b"})),
            Person("2", "Bob Berg", "2", "nurse", (BOB,), frozenset({"ward-4b", "role-nurse"})),
            Person("3", "Carol Berg", "3", "nurse", (CAROL,), frozenset({"ward-7"})),
        ]
    )


def test_every_term_must_match_and_accents_do_not_matter() -> None:
    assert [p.key for p in find(directory(), Query(name="berg"))] == ["2", "3"]
    assert [p.key for p in find(directory(), Query(name="berg", ward="4b"))] == ["2"]
    assert [p.key for p in find(directory(), Query(name="arztin"))] == ["1"]
    assert [p.key for p in find(directory(), Query(role="nurse", ward="7"))] == ["3"]
    assert find(directory(), Query()) == []


class TestSearch(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))
        DirectorySearch(self.xmpp, self._directory).attach()

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    async def _directory(self) -> Directory:
        return directory()

    @pytest.mark.requirement("I.3")
    def test_a_member_finds_a_colleague_by_name_and_ward(self) -> None:
        self.recv_settled(
            f"""<iq type="set" id="s1" from="{ALICE}/phone" to="{COMPONENT}">
                  <query xmlns="jabber:iq:search">
                    <x xmlns="{DATA}" type="submit">
                      <field var="FORM_TYPE" type="hidden"><value>jabber:iq:search</value></field>
                      <field var="name"><value>berg</value></field>
                      <field var="ward"><value>4b</value></field>
                    </x></query></iq>"""
        )
        sent = self.next_sent()
        assert sent.get("type") == "result" and sent.get("to") == f"{ALICE}/phone"
        items = sent.findall(f".//{{{DATA}}}item")
        found = [{f.get("var"): f.findtext(f"{{{DATA}}}value") for f in item} for item in items]
        assert found == [{"jid": BOB, "name": "Bob Berg", "role": "nurse", "wards": "ward-4b"}]

    @pytest.mark.requirement("I.3")
    def test_a_member_gets_the_form(self) -> None:
        self.recv_settled(
            f"""<iq type="get" id="s2" from="{ALICE}/phone" to="{COMPONENT}">
                  <query xmlns="jabber:iq:search"/></iq>"""
        )
        sent = self.next_sent()
        fields = [f.get("var") for f in sent.findall(f".//{{{DATA}}}field")]
        assert {"name", "ward", "role", "FORM_TYPE"} <= set(fields), ET.tostring(sent)

    @pytest.mark.requirement("IV.2")
    def test_someone_outside_the_directory_is_forbidden(self) -> None:
        for stranger in ("mallory@hospital.test/x", "alice@elsewhere.test/x"):
            self.recv_settled(
                f"""<iq type="get" id="s3" from="{stranger}" to="{COMPONENT}">
                      <query xmlns="jabber:iq:search"/></iq>"""
            )
            self.expect_error(stranger, COMPONENT, "forbidden", "s3")
