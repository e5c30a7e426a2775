"""XEP-0356 in both dialects and the roster push, as stanzas on the wire (I.3, IV.2)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings
from xmpp_clinic.directory.model import Directory, Person
from xmpp_clinic.directory.roster import RosterItem, ThreadView, entries_for, plan
from xmpp_clinic.threads import ThreadInfo
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.privilege import Privileges
from xmpp_clinic.xmpp.roster_sync import RosterSync

ALICE, BOB, CAROL = "alice@hospital.test", "bob@hospital.test", "carol@hospital.test"


def directory() -> Directory:
    return Directory(
        [
            Person("1", "Alice A", "1", "nurse", (ALICE,), frozenset({"ward-a", "role-nurse"})),
            Person("2", "Bob B", "2", "nurse", (BOB,), frozenset({"ward-a", "role-nurse"})),
            Person("3", "Carol C", "3", "nurse", (CAROL,), frozenset({"ward-b", "role-nurse"})),
        ]
    )


def test_roster_holds_own_threads_and_ward_colleagues_not_the_whole_role() -> None:
    threads = [
        ThreadView(f"care-a@{COMPONENT}", "Ward A", frozenset({ALICE, BOB})),
        ThreadView(f"care-b@{COMPONENT}", "Ward B", frozenset({CAROL})),
    ]
    assert entries_for(ALICE, directory(), threads) == {
        f"care-a@{COMPONENT}": "Ward A",
        BOB: "Bob B",
    }
    assert entries_for("eve@hospital.test", directory(), threads) == {}


def test_plan_adds_renames_and_removes_only_within_the_group() -> None:
    current = {
        BOB: RosterItem(BOB, "Bob", frozenset({"Clinic"})),
        CAROL: RosterItem(CAROL, "Carol", frozenset({"Clinic", "Friends"})),
        "dave@hospital.test": RosterItem("dave@hospital.test", "Dave", frozenset({"Clinic"})),
        "mum@home.test": RosterItem("mum@home.test", "Mum", frozenset({"Family"})),
    }
    changes = plan(current, {BOB: "Bob B", "t@c": "T"}, "Clinic")
    assert changes == [
        RosterItem(BOB, "Bob B", frozenset({"Clinic"})),
        RosterItem("t@c", "T", frozenset({"Clinic"})),
        RosterItem(CAROL, "Carol", frozenset({"Friends"})),
        RosterItem("dave@hospital.test", "Dave", remove=True),
    ]


class TestPrivilegeDialects(ComponentTest):
    """ejabberd 23.01 advertises urn:xmpp:privilege:1, Prosody 0.12 urn:xmpp:privilege:2."""

    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        self.start(ClinicComponent(make_settings(Path(self._tmp.name))))
        self.privileges = Privileges(self.xmpp, user_domains=["hospital.test", "h2.test"])
        self.privileges.attach()

    def tearDown(self) -> None:
        super().tearDown()
        self._tmp.cleanup()

    @pytest.mark.requirement("I.3")
    def test_ejabberd_dialect_grants_roster(self) -> None:
        self.recv_settled(
            f"""<message from="hospital.test" to="{COMPONENT}">
                  <privilege xmlns="urn:xmpp:privilege:1">
                    <perm access="roster" type="both"/>
                    <perm access="message" type="outgoing"/>
                  </privilege></message>"""
        )
        grant = self.privileges.grant("hospital.test")
        assert grant is not None and grant.dialect == "urn:xmpp:privilege:1"
        assert grant.roster_get and grant.roster_set and grant.message == "outgoing"

    @pytest.mark.requirement("I.3")
    def test_prosody_dialect_grants_roster(self) -> None:
        self.recv_settled(
            f"""<message from="h2.test" to="{COMPONENT}">
                  <privilege xmlns="urn:xmpp:privilege:2">
                    <perm access="roster" type="set"/>
                    <perm access="iq"><namespace ns="jabber:iq:version" type="get"/></perm>
                  </privilege></message>"""
        )
        grant = self.privileges.grant("h2.test")
        assert grant is not None and grant.dialect == "urn:xmpp:privilege:2"
        assert grant.roster_set and not grant.roster_get
        assert self.privileges.grant("hospital.test") is None

    @pytest.mark.requirement("I.3")
    def test_roster_push_writes_the_group_with_a_set_to_the_bare_jid(self) -> None:
        self.recv_settled(
            f"""<message from="hospital.test" to="{COMPONENT}">
                  <privilege xmlns="urn:xmpp:privilege:2"><perm access="roster" type="set"/>
                  </privilege></message>"""
        )
        thread = ThreadInfo(1, "care-a", "Ward A", "group", "", None, ())  # type: ignore[arg-type]
        sync = RosterSync(
            self.xmpp,
            self.privileges,
            self._directory,
            lambda: [thread],
            group="Clinic",
        )
        future = self.started(sync.refresh())
        self.send(
            f"""<iq type="set" id="1" to="{ALICE}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster">
                    <item jid="{BOB}" name="Bob B"><group>Clinic</group></item>
                  </query></iq>"""
        )
        self.recv(f'<iq type="result" id="1" from="{ALICE}" to="{COMPONENT}"/>')
        self.send(
            f"""<iq type="set" id="2" to="{BOB}" from="{COMPONENT}">
                  <query xmlns="jabber:iq:roster">
                    <item jid="{ALICE}" name="Alice A"><group>Clinic</group></item>
                  </query></iq>"""
        )
        self.recv(f'<iq type="result" id="2" from="{BOB}" to="{COMPONENT}"/>')
        self.run_coro(future)  # carol has no ward colleague and no thread: nothing to push

    async def _directory(self) -> Directory:
        return directory()
