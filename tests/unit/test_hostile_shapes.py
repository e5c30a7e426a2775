# ruff: noqa: E501  (literal XML reads best on one line)
"""A stanza nested too deep gets its answer before any handler copies it (issue 8.7; I.12).

slixmpp's ``iq.reply()`` and its error replies deep-copy the payload: a 500-deep IQ
raised ``RecursionError`` and got no answer. The address guard bounds every stanza's
shape before any matcher or handler and answers from the top-level attributes alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.unit.threads_stanza_base import ALICE, COMPONENT, WARD, ThreadStanzaTest

pytestmark = pytest.mark.requirement("I.12")

MUC = "http://jabber.org/protocol/muc"
MUC_ADMIN = "http://jabber.org/protocol/muc#admin"
DISCO_INFO = "http://jabber.org/protocol/disco#info"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
POLICY = "urn:xmpp-clinic:policy:0"
COMPONENT_NS = "jabber:component:accept"
DEEP = "<a>" * 500 + "</a>" * 500
TOO_DEEP = "The stanza was not accepted: it is nested more than 16 levels deep."


class TestDeepStanzas(ThreadStanzaTest):
    def still_answers(self) -> None:
        """The link is up: a ping to the component is answered."""
        self.recv_settled(
            f'<iq type="get" id="alive" from="{ALICE}/phone" to="{COMPONENT}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="alive" from="{COMPONENT}" to="{ALICE}/phone"/>')

    def refused(self, kind: str, to: str, stanza_id: str, condition: str) -> ET.Element:
        sent = self.next_sent()
        assert sent.tag == f"{{{COMPONENT_NS}}}{kind}", ET.tostring(sent)
        assert (sent.get("type"), sent.get("id")) == ("error", stanza_id), ET.tostring(sent)
        assert (sent.get("from"), sent.get("to")) == (to, f"{ALICE}/phone"), ET.tostring(sent)
        error = sent.find(f"{{{COMPONENT_NS}}}error")
        assert error is not None and error.get("type") == "modify", ET.tostring(sent)
        assert error.find(f"{{{STANZAS}}}{condition}") is not None, ET.tostring(sent)
        assert error.findtext(f"{{{STANZAS}}}text") == TOO_DEEP
        assert len(ET.tostring(sent)) < 1000, "the answer carries the payload"
        return error

    def test_a_deep_member_list_query_to_a_thread_is_a_policy_violation(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="q1" from="{ALICE}/phone" to="{WARD}"><query xmlns="{MUC_ADMIN}">{DEEP}</query></iq>'
        )
        error = self.refused("iq", WARD, "q1", "policy-violation")
        assert error.find(f"{{{POLICY}}}stanza-too-large") is not None
        self.send(None)
        self.still_answers()

    def test_a_deep_disco_query_to_the_component_is_a_policy_violation(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="d1" from="{ALICE}/phone" to="{COMPONENT}"><query xmlns="{DISCO_INFO}">{DEEP}</query></iq>'
        )
        self.refused("iq", COMPONENT, "d1", "policy-violation")
        self.send(None)
        self.still_answers()

    def test_a_deep_message_is_refused_with_the_reason_code(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<message type="groupchat" id="m1" from="{ALICE}/phone" to="{WARD}"><x xmlns="urn:example">{DEEP}</x></message>'
        )
        error = self.refused("message", WARD, "m1", "policy-violation")
        assert error.find(f"{{{POLICY}}}stanza-too-large") is not None
        self.send(None)

    def test_a_deep_join_is_not_acceptable(self) -> None:
        self.recv_settled(
            f'<presence id="j1" from="{ALICE}/phone" to="{WARD}/Alice"><x xmlns="{MUC}"/><c xmlns="urn:example">{DEEP}</c></presence>'
        )
        sent = self.next_sent()
        assert sent.find(f"{{{MUC}}}x") is not None, ET.tostring(sent)
        assert sent.get("from") == f"{WARD}/Alice"
        error = sent.find(f"{{{COMPONENT_NS}}}error")
        assert error is not None and error.find(f"{{{STANZAS}}}not-acceptable") is not None
        assert error.findtext(f"{{{STANZAS}}}text") == TOO_DEEP
        self.send(None)

    def test_deep_results_errors_and_leaves_are_dropped_silently(self) -> None:
        for stanza in (
            f'<iq type="result" id="r1" from="{ALICE}/phone" to="{COMPONENT}"><query xmlns="urn:example">{DEEP}</query></iq>',
            f'<iq type="error" id="r2" from="{ALICE}/phone" to="{WARD}"><error type="cancel">{DEEP}</error></iq>',
            f'<message type="error" id="r3" from="{ALICE}/phone" to="{WARD}"><error type="cancel">{DEEP}</error></message>',
            f'<presence type="unavailable" from="{ALICE}/phone" to="{WARD}/Alice"><status>{DEEP}</status></presence>',
            f'<presence type="subscribe" from="{ALICE}/phone" to="{WARD}"><c xmlns="urn:example">{DEEP}</c></presence>',
        ):
            self.recv_settled(stanza)
            self.send(None)
        self.still_answers()

    def test_a_query_within_the_limits_still_reaches_its_handler(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="ok1" from="{ALICE}/phone" to="{COMPONENT}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="ok1" from="{COMPONENT}" to="{ALICE}/phone"/>')
