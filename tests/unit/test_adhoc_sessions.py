# ruff: noqa: E501  (literal XML reads best on one line)
"""XEP-0050 sessions are bounded: freed when done, expired, capped (issue 8.5; I.12, II.1)."""

from __future__ import annotations

import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.unit.harness import COMPONENT, ComponentTest, make_settings, migrated_store
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import DeviceState, ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp.adhoc import SESSIONS_PER_PERSON, CommandSessions
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.device_commands import attach

pytestmark = pytest.mark.requirement("I.12", "II.1")

IT = "it@hospital.test/gajim"
OPS = "ops@hospital.test/psi"
BOB = "bob@hospital.test"
CMD = "http://jabber.org/protocol/commands"
XDATA = "jabber:x:data"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def execute(node: str, iq_id: str, sender: str = IT) -> str:
    return f'<iq type="set" id="{iq_id}" from="{sender}" to="{COMPONENT}"><command xmlns="{CMD}" node="{node}" action="execute"/></iq>'


def step(node: str, session: str, action: str, fields: dict[str, str], sender: str = IT) -> str:
    values = "".join(f'<field var="{k}"><value>{v}</value></field>' for k, v in fields.items())
    return (
        f'<iq type="set" id="c2" from="{sender}" to="{COMPONENT}">'
        f'<command xmlns="{CMD}" node="{node}" sessionid="{session}" action="{action}">'
        f'<x xmlns="{XDATA}" type="submit">{values}</x></command></iq>'
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SessionTest(ComponentTest):
    def setUp(self) -> None:
        self._tmp = tempfile.TemporaryDirectory()
        tmp = Path(self._tmp.name)
        settings = make_settings(tmp, xmpp={"admins": ["it@hospital.test", "ops@hospital.test"]})
        self.start(ClinicComponent(settings))
        self.store = self.run_coro(migrated_store(tmp / "unit.db"))
        self.registry = DeviceRegistry(self.store, settings.policy)
        self.run_coro(self.registry.observe(BOB, LEGACY_NS, {12: ObservedDevice()}))
        self.clock = Clock()
        adhoc: Any = self.xmpp.plugin["xep_0050"]
        adhoc.set_backend(CommandSessions(clock=self.clock))
        self.commands = attach(self.xmpp, self.registry)
        self.sessions = self.commands.sessions
        self.settle()

    def tearDown(self) -> None:
        self.run_coro(self.store.close())
        super().tearDown()
        self._tmp.cleanup()

    def command(self, stanza: ET.Element) -> ET.Element:
        found = stanza.find(f"{{{CMD}}}command")
        assert found is not None, ET.tostring(stanza)
        return found

    def start_session(self, node: str = "devices-approve", sender: str = IT) -> str:
        self.recv_settled(execute(node, "c1", sender))
        return self.command(self.next_sent()).get("sessionid", "")

    def note(self) -> str:
        return self.command(self.next_sent()).findtext(f"{{{CMD}}}note") or ""


class TestSessionsAreFreed(SessionTest):
    def test_a_completed_session_is_gone(self) -> None:
        session = self.start_session()
        assert len(self.sessions) == 1
        self.recv_settled(
            step("devices-approve", session, "complete", {"jid": BOB, "device_id": "12"})
        )
        assert "approved" in self.note()
        assert len(self.sessions) == 0 and len(self.xmpp.plugin["xep_0050"].sessions) == 0

    def test_a_session_finished_with_next_is_gone_too(self) -> None:
        session = self.start_session()
        self.recv_settled(step("devices-approve", session, "next", {"jid": BOB, "device_id": "12"}))
        assert self.command(self.next_sent()).get("status") == "completed"
        assert len(self.sessions) == 0

    def test_a_cancelled_session_is_gone(self) -> None:
        session = self.start_session()
        self.recv_settled(step("devices-approve", session, "cancel", {}))
        assert self.command(self.next_sent()).get("status") == "canceled"
        assert len(self.sessions) == 0

    def test_a_session_whose_step_failed_is_gone(self) -> None:
        session = self.start_session()
        with mock.patch.object(self.registry, "approve_each", side_effect=RuntimeError("bug")):
            self.recv_settled(
                step("devices-approve", session, "complete", {"jid": BOB, "device_id": "12"})
            )
        assert self.next_sent().get("type") == "error"
        assert len(self.sessions) == 0

    def test_a_domain_error_completes_the_session_with_a_note(self) -> None:
        session = self.start_session()
        self.recv_settled(
            step("devices-approve", session, "complete", {"jid": BOB, "device_id": "99"})
        )
        assert "no device 99" in self.note()
        assert len(self.sessions) == 0

    def test_an_abandoned_session_expires_after_ten_minutes(self) -> None:
        session = self.start_session()
        self.clock.now += 599
        assert len(self.sessions) == 1
        self.clock.now += 2
        assert len(self.sessions) == 0
        self.recv_settled(
            step("devices-approve", session, "complete", {"jid": BOB, "device_id": "12"})
        )
        self.send(
            # slixmpp writes <error> in jabber:client on a component stream.
            f'<iq type="error" id="c2" from="{COMPONENT}" to="{IT}"><error xmlns="jabber:client" type="modify">'
            f'<bad-sessionid xmlns="{CMD}"/><bad-request xmlns="{STANZAS}"/>'
            f'<text xmlns="{STANZAS}">This command session has ended (finished, cancelled or expired); start the command again.</text>'
            "</error></iq>",
            use_values=False,
        )
        assert self.run_coro(self.registry.device(BOB, 12)).state is DeviceState.PENDING

    def test_a_step_keeps_a_session_alive(self) -> None:
        session = self.start_session()
        self.clock.now += 500
        self.sessions[session] = self.sessions[session]  # what xep_0050 does on each step
        self.clock.now += 500
        assert session in self.sessions


class TestSessionsAreCapped(SessionTest):
    def test_three_thousand_starts_leave_five_sessions(self) -> None:
        for number in range(3000):
            self.recv(execute("devices-approve", f"s{number}"))
        self.settle()
        replies = [self.next_sent() for _ in range(3000)]
        forms = [r for r in replies if r.get("type") == "result"]
        refused = [r for r in replies if r.get("type") == "error"]
        assert (len(forms), len(refused)) == (SESSIONS_PER_PERSON, 3000 - SESSIONS_PER_PERSON)
        assert len(self.sessions) == SESSIONS_PER_PERSON
        error = next(c for c in refused[0] if c.tag.endswith("}error"))
        assert error.get("type") == "wait"
        assert error.find(f"{{{STANZAS}}}resource-constraint") is not None
        assert "5 command sessions open" in (error.findtext(f"{{{STANZAS}}}text") or "")

    def test_the_refusal_on_the_wire(self) -> None:
        for _ in range(SESSIONS_PER_PERSON):
            self.start_session()
        self.recv(execute("devices-approve", "over"))
        self.send(
            f'<iq type="error" id="over" from="{COMPONENT}" to="{IT}"><error xmlns="jabber:client" type="wait">'
            f'<resource-constraint xmlns="{STANZAS}"/>'
            f'<text xmlns="{STANZAS}">You have 5 command sessions open (the limit); finish or cancel one, or wait 10 minutes.</text>'
            "</error></iq>",
            use_values=False,
        )

    def test_finishing_one_session_makes_room_for_another(self) -> None:
        sessions = [self.start_session() for _ in range(SESSIONS_PER_PERSON)]
        self.recv_settled(step("devices-approve", sessions[0], "cancel", {}))
        self.next_sent()
        assert self.start_session() != ""

    def test_another_admin_is_not_held_up_by_the_first(self) -> None:
        for _ in range(SESSIONS_PER_PERSON):
            self.start_session()
        assert self.start_session(sender=OPS) != ""

    def test_the_gateway_total_is_capped(self) -> None:
        self.sessions.in_total = 3
        for _ in range(3):
            self.start_session()
        self.recv_settled(execute("devices-approve", "full", OPS))
        self.expect_error(OPS, COMPONENT, "resource-constraint", "full")

    def test_expired_sessions_do_not_count(self) -> None:
        for _ in range(SESSIONS_PER_PERSON):
            self.start_session()
        self.clock.now += 601
        assert self.start_session() != ""


class TestFieldsAreBounded(SessionTest):
    """Every text field of a form has a limit, and the error names it (issue 8.8, 8.9)."""

    def submit(self, node: str, fields: dict[str, str]) -> str:
        session = self.start_session(node)
        self.recv_settled(step(node, session, "complete", fields))
        return self.note()

    def test_an_oversized_device_id_is_a_form_error(self) -> None:
        note = self.submit("devices-approve", {"jid": BOB, "device_id": "99999999999999999999999"})
        assert note == "device id must be a number from 1 to 2147483647"

    def test_zero_and_signed_device_ids_are_refused(self) -> None:
        for raw in ("0", "-5", "+5", "2147483648"):
            note = self.submit("devices-revoke", {"jid": BOB, "device_id": raw, "reason": "x"})
            assert "from 1 to 2147483647" in note, raw

    def test_a_reason_beyond_the_limit_names_the_limit(self) -> None:
        fields = {"jid": BOB, "device_id": "12", "reason": "x" * 501}
        assert self.submit("devices-revoke", fields) == "'reason' is at most 500 characters"
        assert self.run_coro(self.registry.device(BOB, 12)).state is DeviceState.PENDING

    def test_an_asset_id_beyond_the_store_column_is_refused(self) -> None:
        fields = {"jid": BOB, "device_id": "12", "asset": "a" * 129}
        assert self.submit("devices-approve", fields) == "'asset' is at most 128 characters"

    def test_a_huge_jid_is_refused_before_parsing(self) -> None:
        note = self.submit("devices-list", {"jid": "a" * 5000 + "@hospital.test"})
        assert note == "'jid' is at most 3071 characters"


@pytest.mark.parametrize("count", [0, 1])
def test_deleting_a_session_twice_is_harmless(count: int) -> None:
    sessions = CommandSessions()
    sessions.admit({"id": "s", "from": None})
    for _ in range(count + 1):
        del sessions["s"]
    assert len(sessions) == 0
