"""Hospital IT approves and revokes devices with XEP-0050 ad-hoc commands (I.5, III.3)."""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xeddsa
from slixmpp.test.mocksocket import TestSocket as MockSocket

from tests.unit.harness import COMPONENT, ComponentTest, make_settings, migrated_store
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import DeviceState, ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.device_commands import attach

pytestmark = pytest.mark.requirement("I.4", "I.5", "III.3")

IT = "it@hospital.test/gajim"
BOB = "bob@hospital.test"
CAROL = "carol@hospital.test"
CMD = "http://jabber.org/protocol/commands"
XDATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def execute(node: str, sender: str = IT, iq_id: str = "c1") -> str:
    return f"""<iq type="set" id="{iq_id}" from="{sender}" to="{COMPONENT}">
                 <command xmlns="{CMD}" node="{node}" action="execute"/></iq>"""


def submit(node: str, session: str, fields: dict[str, str], sender: str = IT) -> str:
    values = "".join(f'<field var="{k}"><value>{v}</value></field>' for k, v in fields.items())
    return f"""<iq type="set" id="c2" from="{sender}" to="{COMPONENT}">
                 <command xmlns="{CMD}" node="{node}" sessionid="{session}" action="complete">
                   <x xmlns="{XDATA}" type="submit">{values}</x></command></iq>"""


class TestDeviceCommands(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        settings = make_settings(tmp, xmpp={"admins": ["it@hospital.test"]})
        self.start(ClinicComponent(settings))
        self.store = self.run_coro(migrated_store(tmp / "unit.db"))
        self.registry = DeviceRegistry(self.store, settings.policy)
        listing = {11: ObservedDevice(), 12: ObservedDevice()}
        self.run_coro(self.registry.observe(BOB, LEGACY_NS, listing))
        attach(self.xmpp, self.registry)
        self.settle()

    def tearDown(self) -> None:
        self.run_coro(self.store.close())
        super().tearDown()
        self._tmp.cleanup()

    def reply(self) -> ET.Element:
        """The next stanza the component sent, waiting for store work to finish."""
        self.settle()
        socket = self.xmpp.socket
        assert isinstance(socket, MockSocket)
        raw = socket.next_sent()
        assert raw is not None, "no reply"
        return ET.fromstring(raw)

    def command(self, stanza: ET.Element) -> ET.Element:
        found = stanza.find(f"{{{CMD}}}command")
        assert found is not None, ET.tostring(stanza)
        return found

    def notes(self, stanza: ET.Element) -> list[str]:
        return [note.text or "" for note in self.command(stanza).iter(f"{{{CMD}}}note")]

    def start_session(self, node: str) -> str:
        self.recv(execute(node))
        return self.command(self.reply()).get("sessionid", "")

    def test_person_who_is_not_an_admin_is_refused(self) -> None:
        self.recv(execute("devices-approve", sender="bob@hospital.test/phone"))
        sent = self.reply()
        assert (sent.get("type"), sent.get("to")) == ("error", "bob@hospital.test/phone")
        # slixmpp writes <error> in jabber:client on a component stream; match by local name.
        (error,) = [child for child in sent if child.tag.endswith("}error")]
        assert error.find(f"{{{STANZAS}}}forbidden") is not None
        assert "IT admins" in (error.findtext(f"{{{STANZAS}}}text") or "")

    def test_admin_gets_a_form_asking_which_device(self) -> None:
        self.recv(execute("devices-approve"))
        form = self.command(self.reply()).find(f"{{{XDATA}}}x")
        assert form is not None and form.get("type") == "form"
        fields = [field.get("var") for field in form.iter(f"{{{XDATA}}}field")]
        assert fields == ["jid", "device_id", "namespace", "valid_days", "asset"]

    def test_admin_approves_a_device(self) -> None:
        session = self.start_session("devices-approve")
        self.recv(submit("devices-approve", session, {"jid": BOB, "device_id": "12"}))
        result = self.reply()
        assert self.command(result).get("status") == "completed"
        assert "approved" in self.notes(result)[0]
        device = self.run_coro(self.registry.device(BOB, 12))
        assert device.state is DeviceState.APPROVED
        assert device.approved_by == "xmpp:it@hospital.test"

    def test_admin_revokes_every_device_of_a_lost_phone(self) -> None:
        session = self.start_session("devices-revoke-all")
        self.recv(submit("devices-revoke-all", session, {"jid": BOB, "reason": "lost phone"}))
        assert len(self.notes(self.reply())) == 2
        devices = self.run_coro(self.registry.devices(BOB))
        assert {device.state for device in devices} == {DeviceState.REVOKED}

    def test_admin_lists_pending_devices(self) -> None:
        session = self.start_session("devices-list")
        self.recv(submit("devices-list", session, {"state": "pending"}))
        notes = self.notes(self.reply())
        assert len(notes) == 2 and all("pending" in note for note in notes)

    def test_unknown_device_is_reported_not_crashing(self) -> None:
        session = self.start_session("devices-revoke")
        fields = {"jid": BOB, "device_id": "99", "reason": "x"}
        self.recv(submit("devices-revoke", session, fields))
        result = self.reply()
        assert self.command(result).get("status") == "completed"
        assert "no device 99" in self.notes(result)[0]

    def test_someone_else_cannot_finish_an_admins_session(self) -> None:
        session = self.start_session("devices-approve")
        fields = {"jid": BOB, "device_id": "12"}
        self.recv(submit("devices-approve", session, fields, sender="bob@hospital.test/phone"))
        assert self.reply().get("type") == "error"
        device = self.run_coro(self.registry.device(BOB, 12))
        assert device.state is DeviceState.PENDING

    def test_validity_beyond_ten_years_is_refused_clearly(self) -> None:
        session = self.start_session("devices-approve")
        fields = {"jid": BOB, "device_id": "12", "valid_days": "9999999"}
        self.recv(submit("devices-approve", session, fields))
        result = self.reply()
        assert self.command(result).get("status") == "completed"
        assert "1 to 3650" in self.notes(result)[0]
        device = self.run_coro(self.registry.device(BOB, 12))
        assert device.state is DeviceState.PENDING

    def test_session_cannot_be_continued_under_another_node(self) -> None:
        session = self.start_session("devices-approve")
        fields = {"jid": BOB, "device_id": "12"}
        stanza = submit("devices-approve", session, fields, sender="bob@hospital.test/phone")
        self.recv(stanza.replace('node="devices-approve"', 'node="start-direct"'))
        assert self.reply().get("type") == "error"
        device = self.run_coro(self.registry.device(BOB, 12))
        assert device.state is DeviceState.PENDING

    def test_omemo_version_may_be_given_by_its_short_name(self) -> None:
        session = self.start_session("devices-approve")
        fields = {"jid": BOB, "device_id": "12", "namespace": "omemo"}
        self.recv(submit("devices-approve", session, fields))
        assert "approved" in self.notes(self.reply())[0]
        assert self.run_coro(self.registry.device(BOB, 12)).state is DeviceState.APPROVED

    def test_the_version_choices_are_the_omemo_versions(self) -> None:
        self.recv(execute("devices-approve"))
        form = self.command(self.reply()).find(f"{{{XDATA}}}x")
        assert form is not None
        (field,) = [f for f in form.iter(f"{{{XDATA}}}field") if f.get("var") == "namespace"]
        options = [(o.get("label"), o.findtext(f"{{{XDATA}}}value")) for o in field]
        assert options == [  # left empty: any version
            ("omemo", "eu.siacs.conversations.axolotl"),
            ("omemo2", "urn:xmpp:omemo:2"),
        ]

    def test_device_id_beyond_31_bits_is_refused_clearly(self) -> None:
        session = self.start_session("devices-revoke")
        fields = {"jid": BOB, "device_id": "4294967296", "reason": "x"}
        self.recv(submit("devices-revoke", session, fields))
        assert "from 1 to 2147483647" in self.notes(self.reply())[0]

    def test_unknown_state_is_reported(self) -> None:
        session = self.start_session("devices-list")
        self.recv(submit("devices-list", session, {"state": "lost"}))
        assert self.notes(self.reply()) == ["unknown device state 'lost'"]

    def test_a_person_typed_in_another_case_is_the_same_person(self) -> None:
        session = self.start_session("devices-approve")
        fields = {"jid": "Bob@Hospital.Test", "device_id": "11"}
        self.recv(submit("devices-approve", session, fields))
        self.reply()
        device = self.run_coro(self.registry.device(BOB, 11))
        assert (device.state, device.approved_by) == (DeviceState.APPROVED, "xmpp:it@hospital.test")

    def test_one_approval_covers_both_versions_of_one_phone(self) -> None:
        """Issue 9.8: same id, same identity key in both OMEMO versions: one phone."""
        priv = xeddsa.seed_to_priv(bytes([21]) * 32)
        curve, ed = xeddsa.priv_to_curve25519_pub(priv), xeddsa.priv_to_ed25519_pub(priv)
        self.run_coro(self.registry.observe(CAROL, LEGACY_NS, {21: ObservedDevice(None, curve)}))
        self.run_coro(self.registry.observe(CAROL, OMEMO2_NS, {21: ObservedDevice(None, ed)}))
        session = self.start_session("devices-approve")
        self.recv(submit("devices-approve", session, {"jid": CAROL, "device_id": "21"}))
        notes = self.notes(self.reply())
        assert [note.split(":")[0] for note in notes] == [
            "approved carol@hospital.test/omemo/21",
            "approved carol@hospital.test/omemo2/21",
        ]
        devices = self.run_coro(self.registry.devices(CAROL))
        assert {device.state for device in devices} == {DeviceState.APPROVED}

    def test_different_keys_still_ask_for_the_version(self) -> None:
        self.run_coro(self.registry.observe(BOB, OMEMO2_NS, {12: ObservedDevice()}))
        session = self.start_session("devices-approve")
        self.recv(submit("devices-approve", session, {"jid": BOB, "device_id": "12"}))
        (note,) = self.notes(self.reply())
        assert "both OMEMO versions" in note and "pass the namespace" in note
        assert self.run_coro(self.registry.device(BOB, 12, LEGACY_NS)).state is DeviceState.PENDING
