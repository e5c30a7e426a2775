# ruff: noqa: E501  (literal XML reads best on one line)
"""The relay: occupants only, policy, archive before fan-out, reflection (DESIGN.md; II.1)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import text

from tests.unit.harness import stanzas_of
from tests.unit.threads_stanza_base import ALICE, BOB, WARD, EncryptedOnly, ThreadStanzaTest, oid
from xmpp_clinic.archive.messages import ArchiveQuery
from xmpp_clinic.policy.fallback import FALLBACK_LANG, FALLBACK_TEXT
from xmpp_clinic.policy.verdict import Action, MessageContext, Verdict

pytestmark = pytest.mark.requirement("II.1", "IV.2")

AXOLOTL = "eu.siacs.conversations.axolotl"
# OMEMO as clients put it on the wire: a Signal message's version byte and size (98
# bytes) and a 12-byte IV, so the wire-format checks read it (xmpp_clinic/omemo.py).
KEY = base64.b64encode(b"\x33" + bytes(97)).decode()
IV = base64.b64encode(bytes(12)).decode()
OMEMO_MESSAGE = f"""
  <message from="{ALICE}/phone" to="{WARD}" type="groupchat" id="m1">
    <body>This message is OMEMO encrypted.</body>
    <encrypted xmlns="{AXOLOTL}"><header sid="111"><key rid="222" prekey="true">{KEY}</key><iv>{IV}</iv></header><payload>cGF5</payload></encrypted>
    <store xmlns="urn:xmpp:hints"/>
    <origin-id xmlns="urn:xmpp:sid:0" id="o1"/>
    <stanza-id xmlns="urn:xmpp:sid:0" id="forged" by="{WARD}"/>
  </message>"""


# Beside OMEMO the gateway writes its own fallback body (policy/fallback.py).
GATEWAY_BODY = f'<body xml:lang="{FALLBACK_LANG}">{FALLBACK_TEXT}</body>'
SENDERS_BODY = "<body>This message is OMEMO encrypted.</body>"


def relayed(to: str, stanza_id: str = "sid-1", body: str = GATEWAY_BODY, seq: int = 1) -> str:
    return f"""
      <message from="{WARD}/Alice" type="groupchat" id="m1" to="{to}">
        {body}
        <encrypted xmlns="{AXOLOTL}"><header sid="111"><key rid="222" prekey="true">{KEY}</key><iv>{IV}</iv></header><payload>cGF5</payload></encrypted>
        <store xmlns="urn:xmpp:hints"/>
        <origin-id xmlns="urn:xmpp:sid:0" id="o1"/>
        <stanza-id xmlns="urn:xmpp:sid:0" id="{stanza_id}" by="{WARD}"/>
        <occupant-id xmlns="urn:xmpp:occupant-id:0" id="{oid(ALICE)}"/>
        <seq xmlns="urn:xmpp-clinic:seq:0" n="{seq}"/>
      </message>"""


class TestRelay(ThreadStanzaTest):
    def setUp(self) -> None:
        super().setUp()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")

    def archived(self) -> list[str]:
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        return [e.stanza_id for e in page.entries]

    def test_omemo_message_is_archived_then_reflected_and_fanned_out_unchanged(self) -> None:
        self.recv_settled(OMEMO_MESSAGE)
        self.send(relayed(f"{ALICE}/phone"))  # the reflection keeps id and origin-id
        self.send(relayed(f"{BOB}/pc"))
        assert self.archived() == ["sid-1"]

    def test_all_copies_of_a_message_go_out_in_one_write_in_order(self) -> None:
        """Issue 13: one socket write per relayed message, not one per occupant (a send
        each was 15 % of the gateway's CPU); the harness splits it for the other tests."""
        writes: list[list[bytes]] = []
        transport = self.xmpp.transport
        original = transport.write

        def recording(data: bytes) -> int:
            writes.append(stanzas_of(data))
            return int(original(data))

        transport.write = recording
        self.recv_settled(OMEMO_MESSAGE)
        [fan_out] = [w for w in writes if any(b"<message" in s for s in w)]
        assert [ET.fromstring(s).get("to") for s in fan_out] == [f"{ALICE}/phone", f"{BOB}/pc"]

    def test_plaintext_is_refused_with_policy_violation_and_not_delivered(self) -> None:
        self.recv_settled(
            f'<message from="{BOB}/pc" to="{WARD}" type="groupchat" id="p1"><body>BP 120/80</body></message>'
        )
        error = self.expect_error(f"{BOB}/pc", WARD, "policy-violation", "p1")
        assert error.find("{jabber:component:accept}error").get("type") == "modify"  # type: ignore[union-attr]
        reason = error.find(
            "{jabber:component:accept}error/{urn:xmpp-clinic:policy:0}plaintext-refused"
        )
        assert reason is not None  # the reason code, as an application-specific condition
        self.send(None)
        assert self.archived() == []

    def test_member_who_has_not_joined_cannot_send(self) -> None:
        self.recv_settled(OMEMO_MESSAGE.replace(f"{ALICE}/phone", f"{ALICE}/laptop"))
        self.expect_error(f"{ALICE}/laptop", WARD, "not-acceptable", "m1")
        self.send(None)

    def test_private_messages_between_occupants_are_refused(self) -> None:
        self.recv_settled(
            f'<message from="{ALICE}/phone" to="{WARD}/Bob" type="chat" id="pm"><body>hi</body></message>'
        )
        self.expect_error(f"{ALICE}/phone", f"{WARD}/Bob", "forbidden", "pm")
        self.send(None)

    def test_subject_changes_are_refused(self) -> None:
        self.recv_settled(
            f'<message from="{ALICE}/phone" to="{WARD}" type="groupchat" id="s"><subject>x</subject></message>'
        )
        self.expect_error(f"{ALICE}/phone", WARD, "forbidden", "s")

    def test_store_failure_refuses_the_message_and_nobody_gets_it(self) -> None:
        async def break_store() -> None:
            async with self.store.session() as session:
                await session.execute(text("DROP TABLE thread_messages"))

        self.run_coro(break_store())
        self.recv_settled(OMEMO_MESSAGE)
        self.expect_error(f"{ALICE}/phone", WARD, "internal-server-error", "m1")
        self.send(None)

    def test_removed_member_cannot_send_even_while_joined_before_the_kick(self) -> None:
        # The relay refreshes membership before each decision (IV.2).
        self.run_coro(self.service.remove_member("ward", ALICE))
        self.recv_settled(OMEMO_MESSAGE)
        sent = [self.next_sent() for _ in range(3)]
        kinds = [(s.tag.rsplit("}", 1)[-1], s.get("type"), s.get("to")) for s in sent]
        assert ("presence", "unavailable", f"{ALICE}/phone") in kinds
        self.drain()
        assert self.archived() == []

    def test_a_burst_is_archived_and_delivered_in_arrival_order(self) -> None:
        # Messages overlap in the relay (group commit) but never overtake each other (II.2).
        for n in (1, 2, 3):
            self.recv(OMEMO_MESSAGE.replace('id="m1"', f'id="m{n}"'))
        self.settle()
        sent = [self.next_sent() for _ in range(6)]
        sid = "{urn:xmpp:sid:0}stanza-id"
        for to in (f"{ALICE}/phone", f"{BOB}/pc"):
            mine = [(s.get("id"), s.find(sid).get("id")) for s in sent if s.get("to") == to]  # type: ignore[union-attr]
            assert mine == [("m1", "sid-1"), ("m2", "sid-2"), ("m3", "sid-3")]
        assert self.archived() == ["sid-1", "sid-2", "sid-3"]

    def test_a_refused_message_in_a_burst_does_not_hold_up_the_others(self) -> None:
        plaintext = f'<message from="{ALICE}/phone" to="{WARD}" type="groupchat" id="m2"><body>BP 120/80</body></message>'
        for xml in (OMEMO_MESSAGE, plaintext, OMEMO_MESSAGE.replace('id="m1"', 'id="m3"')):
            self.recv(xml)
        self.settle()
        sent = [self.next_sent() for _ in range(5)]
        assert [(s.get("id"), s.get("type")) for s in sent if s.get("to") == f"{BOB}/pc"] == [
            ("m1", "groupchat"),
            ("m3", "groupchat"),
        ]
        assert ("m2", "error") in [(s.get("id"), s.get("type")) for s in sent]
        assert self.archived() == ["sid-1", "sid-2"]


class ModifyingPolicy:
    """Drops the <store/> hint and adds a notice: a stand-in for key stripping."""

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        changed = ET.fromstring(ET.tostring(ctx.stanza))
        for hint in changed.findall("{urn:xmpp:hints}store"):
            changed.remove(hint)
        return Verdict(Action.MODIFY, "stripped", stanza=changed, notices=("One key removed.",))


class TestModifiedVerdict(ThreadStanzaTest):
    policy = ModifyingPolicy()

    def test_modified_stanza_is_relayed_and_the_sender_gets_the_notice(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(OMEMO_MESSAGE)
        mine = relayed(f"{ALICE}/phone", body=SENDERS_BODY)  # this policy keeps the body
        self.send(mine.replace('<store xmlns="urn:xmpp:hints"/>', ""))
        self.send(
            f'<message from="{WARD}" to="{ALICE}/phone" type="normal"><body>One key removed.</body></message>'
        )


class ModifyWithoutStanza:
    """A broken policy: says it changed the message but hands nothing back."""

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        return Verdict(Action.MODIFY, "stripped")


class TestBrokenPolicyFailsClosed(ThreadStanzaTest):
    policy = ModifyWithoutStanza()

    def test_modify_without_a_stanza_refuses_instead_of_relaying_the_original(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(OMEMO_MESSAGE)
        self.expect_error(f"{ALICE}/phone", WARD, "internal-server-error", "m1")
        self.send(None)  # Bob got nothing: the unstripped original never leaves (I.12)


class TestForgedDelay(ThreadStanzaTest):
    def test_a_sender_supplied_delay_is_not_relayed(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(
            OMEMO_MESSAGE.replace(
                "<store",
                '<delay xmlns="urn:xmpp:delay" stamp="2001-01-01T00:00:00Z"/><store',
            )
        )
        self.send(relayed(f"{ALICE}/phone"))  # no <delay>: clients show the real time
        self.send(relayed(f"{BOB}/pc"))


class TestForgedStanzaId(ThreadStanzaTest):
    def test_a_sender_supplied_stanza_id_is_dropped_whatever_its_by(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        forged = f'<stanza-id xmlns="urn:xmpp:sid:0" id="forged" by="{WARD.upper()}"/>'
        self.recv_settled(OMEMO_MESSAGE.replace("<store", forged + "<store"))
        self.send(relayed(f"{ALICE}/phone"))  # only the thread's own stanza-id
        self.send(relayed(f"{BOB}/pc"))


def nested(depth: int) -> str:
    return "<x xmlns='urn:example:deep'>" * depth + "</x>" * depth


class TestDeepNesting(ThreadStanzaTest):
    """Issue 8 finding 7: depth and size are bounded before any copy (I.12)."""

    def test_deeply_nested_messages_get_policy_violation_and_the_stream_stays_up(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        for n, depth in enumerate((500, 100_000)):
            self.recv_settled(
                f'<message from="{ALICE}/phone" to="{WARD}" type="groupchat" id="deep{n}">{nested(depth)}</message>'
            )
            error = self.expect_error(f"{ALICE}/phone", WARD, "policy-violation", f"deep{n}")
            code = error.find(
                "{jabber:component:accept}error/{urn:xmpp-clinic:policy:0}stanza-too-large"
            )
            assert code is not None
            self.send(None)  # Bob got nothing
        # The link is still up and the relay still works.
        self.recv_settled(OMEMO_MESSAGE)
        self.send(relayed(f"{ALICE}/phone"))
        self.send(relayed(f"{BOB}/pc"))
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        assert [e.stanza_id for e in page.entries] == ["sid-1"]

    def test_a_deep_error_stanza_is_dropped_without_an_answer(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<message from="{ALICE}/phone" to="{WARD}" type="error" id="e">{nested(500)}</message>'
        )
        self.send(None)


SEQ = "{urn:xmpp-clinic:seq:0}seq"


class TestSequenceNumbers(ThreadStanzaTest):
    """Issue 11: every relayed message carries the archive's per-thread sequence (II.2)."""

    def test_each_copy_carries_the_archive_seq_and_a_client_seq_is_dropped(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        forged = '<seq xmlns="urn:xmpp-clinic:seq:0" n="999"/>'
        for n in (1, 2, 3):
            self.recv(
                OMEMO_MESSAGE.replace('id="m1"', f'id="m{n}"').replace("<store", forged + "<store")
            )
        self.settle()
        sent = [self.next_sent() for _ in range(6)]
        for stanza in sent:
            assert [s.get("n") for s in stanza.iter(SEQ)] == [stanza.get("id", "")[1:]]
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        assert [e.seq for e in page.entries] == [1, 2, 3]
        assert all("seq" not in e.stanza for e in page.entries)  # the archive has it as a column


class DevicesOf:
    """A device registry stand-in: who reads with which legacy device ids."""

    def __init__(self, devices: dict[str, set[int]]) -> None:
        self.devices = devices

    async def snapshot(self, persons: object = ()) -> DevicesOf:
        return self

    def usable_ids(self, jid: str, namespace: str, now: object) -> frozenset[int]:
        return frozenset(self.devices.get(jid, ())) if namespace == AXOLOTL else frozenset()


def keys(*rids: int) -> str:
    return "".join(f'<key rid="{rid}">{KEY}</key>' for rid in rids)


class TestTrimmedFanOut(ThreadStanzaTest):
    """Issue 13: each member's copy carries only that member's keys; the archive all (II.3)."""

    def setUp(self) -> None:
        super().setUp()
        from xmpp_clinic.xmpp.relay import Relay

        self.xmpp.remove_handler("ThreadMessage")
        devices = DevicesOf({ALICE: {111, 112}, BOB: {222, 223}})
        Relay(
            self.host, self.archive, EncryptedOnly(), new_id=lambda: "sid-1", devices=devices
        ).attach()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.join(f"{BOB}/tablet", "Bob")

    def test_members_get_their_own_keys_and_the_sender_its_other_devices(self) -> None:
        message = OMEMO_MESSAGE.replace(
            f'<key rid="222" prekey="true">{KEY}</key>', keys(222, 112, 223, 999)
        )
        self.recv_settled(message)
        got = {}
        for _ in range(3):
            stanza = self.next_sent()
            got[stanza.get("to")] = [k.get("rid") for k in stanza.iter(f"{{{AXOLOTL}}}key")]
            header = stanza.find(f"{{{AXOLOTL}}}encrypted/{{{AXOLOTL}}}header")
            assert header is not None and header.get("sid") == "111"
            assert header.findtext(f"{{{AXOLOTL}}}iv") == IV
            assert [s.get("n") for s in stanza.iter(SEQ)] == ["1"]
        assert got == {
            f"{ALICE}/phone": ["112"],
            f"{BOB}/pc": ["222", "223"],
            f"{BOB}/tablet": ["222", "223"],
        }
        self.send(None)
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        stored = ET.fromstring(f'<r xmlns="jabber:component:accept">{page.entries[0].stanza}</r>')
        assert [k.get("rid") for k in stored.iter(f"{{{AXOLOTL}}}key")] == [
            "222",
            "112",
            "223",
            "999",
        ]

    def test_the_exact_copy_bob_receives(self) -> None:
        self.recv_settled(
            OMEMO_MESSAGE.replace(f'<key rid="222" prekey="true">{KEY}</key>', keys(112, 222))
        )
        self.next_sent()  # the reflection
        self.send(
            relayed(f"{BOB}/pc").replace(f'<key rid="222" prekey="true">{KEY}</key>', keys(222))
        )


class RegistryDown(DevicesOf):
    async def snapshot(self, persons: object = ()) -> DevicesOf:
        raise RuntimeError("registry down")


class TestTrimmingFailsClosed(ThreadStanzaTest):
    def test_no_device_snapshot_no_archive_no_delivery(self) -> None:
        from xmpp_clinic.xmpp.relay import Relay

        self.xmpp.remove_handler("ThreadMessage")
        Relay(self.host, self.archive, EncryptedOnly(), devices=RegistryDown({})).attach()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(OMEMO_MESSAGE)
        self.expect_error(f"{ALICE}/phone", WARD, "internal-server-error", "m1")
        self.send(None)
        page = self.run_coro(self.archive.query(ArchiveQuery(thread_id=1)))
        assert page.entries == []


class TestArchivedHook(ThreadStanzaTest):
    """The records member links its documentation copy to the archive (II.2)."""

    def test_the_hook_hears_thread_message_id_sender_stanza_id_and_seq(self) -> None:
        from xmpp_clinic.xmpp.relay import Relay

        heard: list[tuple[str, str, str, str, int]] = []

        async def archived(thread: str, message_id: str, sender: str, sid: str, seq: int) -> None:
            heard.append((thread, message_id, sender, sid, seq))
            raise RuntimeError("a broken hook changes nothing for the message")

        self.xmpp.remove_handler("ThreadMessage")
        Relay(
            self.host, self.archive, EncryptedOnly(), new_id=lambda: "sid-1", archived=archived
        ).attach()
        self.join(f"{ALICE}/phone", "Alice")
        self.join(f"{BOB}/pc", "Bob")
        self.recv_settled(OMEMO_MESSAGE)
        self.send(relayed(f"{ALICE}/phone"))
        self.send(relayed(f"{BOB}/pc"))
        assert heard == [("ward", "m1", ALICE, "sid-1", 1)]
