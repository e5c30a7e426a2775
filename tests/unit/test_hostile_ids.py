# ruff: noqa: E501  (literal XML reads best on one line)
"""An id with a line break or tab comes back exactly as sent (issue 8.2; I.12).

A parser turns a raw line break, carriage return or tab inside an attribute value into a
space (XML 1.0 3.3.3), so the gateway must write them as ``&#10;``, ``&#13;``, ``&#9;``
or the sender cannot match the error to its message. Both servers read them back so.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from slixmpp.test import TestSocket as MockSocket
from slixmpp.xmlstream import tostring

from tests.unit.threads_stanza_base import ALICE, COMPONENT, WARD, ThreadStanzaTest
from xmpp_clinic import namespaces as ns
from xmpp_clinic.xmpp import muc_stanzas as ms

pytestmark = pytest.mark.requirement("I.12")

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
ODD_ID = "fz&#10;line&#13;cr&#9;tab"
ODD_ID_VALUE = "fz\nline\rcr\ttab"


def test_serialise_writes_line_breaks_and_tabs_in_attributes_as_references() -> None:
    root = ms.stanza_error(
        "message",
        WARD,
        f"{ALICE}/phone",
        "policy-violation",
        "modify",
        "a\nb",
        stanza_id=ODD_ID_VALUE,
    )
    text = ms.serialise(root)
    assert f'id="{ODD_ID}"' in text
    assert (
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">a\nb</text>' in text
    )  # text keeps its line break
    wrapped = text.replace(" ", f' xmlns="{ns.COMPONENT}" ', 1)
    assert ET.fromstring(wrapped).get("id") == ODD_ID_VALUE


def test_serialise_writes_what_slixmpp_writes_otherwise() -> None:
    for literal in (
        f"<message xmlns='{ns.COMPONENT}' to='a@b' id='x&apos;&quot;&lt;&amp;'><body>hi &amp; 'yo' <b xmlns='urn:x'>bold</b> tail</body><x xmlns='http://jabber.org/protocol/muc#user'><item affiliation='member'/><status code='110'/></x><e xmlns=''/></message>",
        "<iq xmlns='jabber:client' type='get'><query xmlns='urn:q' xml:lang='en'><a><b>t</b>tl</a></query></iq>",
        "<presence/>",
    ):
        root = ET.fromstring(literal)
        for outer in (ns.COMPONENT, ns.CLIENT, ""):
            assert ms.serialise(root, outer) == tostring(root, xmlns=outer, top_level=True)


def test_serialise_is_not_recursive() -> None:
    root = ET.Element("a")
    node = root
    for _ in range(5000):
        node = ET.SubElement(node, "b")
    assert ms.serialise(root).count("<b") == 5000


def test_an_addressed_copy_escapes_its_address() -> None:
    assert ms.address('<message id="1" />', "x\ny@z") == '<message to="x&#10;y@z" id="1" />'


class TestIdsComeBackAsSent(ThreadStanzaTest):
    def raw_sent(self) -> str:
        self.settle()
        socket = self.xmpp.socket
        assert isinstance(socket, MockSocket)
        raw = socket.next_sent()
        assert raw is not None, "nothing was sent"
        return raw if isinstance(raw, str) else raw.decode()

    def test_a_refused_message_id_with_a_line_break_comes_back_in_the_error(self) -> None:
        self.join(f"{ALICE}/phone", "Alice")
        self.recv_settled(
            f'<message type="groupchat" id="{ODD_ID}" from="{ALICE}/phone" to="{WARD}"><body>plain</body></message>'
        )
        raw = self.raw_sent()
        assert f'id="{ODD_ID}"' in raw, raw
        assert 'type="error"' in raw and "policy-violation" in raw, raw

    def test_a_reply_slixmpp_writes_itself_carries_the_id_as_sent(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="{ODD_ID}" from="{ALICE}/phone" to="{COMPONENT}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        raw = self.raw_sent()
        assert f'id="{ODD_ID}"' in raw and 'type="result"' in raw, raw
        parsed = ET.fromstring(raw.replace(" ", f' xmlns="{ns.COMPONENT}" ', 1))
        assert parsed.get("id") == ODD_ID_VALUE

    def test_an_error_slixmpp_writes_itself_carries_the_id_as_sent(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="{ODD_ID}" from="{ALICE}/phone" to="{COMPONENT}"><query xmlns="urn:example:unknown"/></iq>'
        )
        raw = self.raw_sent()
        assert f'id="{ODD_ID}"' in raw and 'type="error"' in raw, raw
        assert STANZAS in raw

    def test_replies_without_such_characters_are_left_to_slixmpp(self) -> None:
        self.recv_settled(
            f'<iq type="get" id="plain" from="{ALICE}/phone" to="{COMPONENT}"><ping xmlns="urn:xmpp:ping"/></iq>'
        )
        self.send(f'<iq type="result" id="plain" from="{COMPONENT}" to="{ALICE}/phone"/>')
