"""One stanza cannot exhaust the gateway: depth and size are bounded first (I.12; issue 8,
finding 7: 500 nested elements made ``copy.deepcopy`` hit the recursion limit, so the
sender got no answer and the log a traceback)."""

from __future__ import annotations

import base64
import copy
import sys
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.omemo import MAX_KEYS
from xmpp_clinic.policy import check_shape
from xmpp_clinic.policy.shape import MAX_CHARS, MAX_DEPTH, MAX_ELEMENTS
from xmpp_clinic.policy.verdict import Action, Refusal

pytestmark = pytest.mark.requirement("I.12")

HEAD = '<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test" id="m1">'


def nested(depth: int) -> ET.Element:
    """``depth`` levels in all, the message being the first; built without recursion."""
    root = ET.Element("{jabber:component:accept}message")
    node = root
    for _ in range(depth - 1):
        node = ET.SubElement(node, "{urn:example}x")
    return root


def test_500_nested_elements_are_refused_with_a_policy_violation() -> None:
    verdict = check_shape(nested(500))
    assert verdict.action is Action.REJECT and verdict.reason == "stanza-too-large"
    assert verdict.refusal == Refusal(
        "policy-violation",
        "modify",
        f"The stanza was not accepted: it is nested more than {MAX_DEPTH} levels deep.",
    )


def test_nesting_far_beyond_the_recursion_limit_is_refused_not_crashing() -> None:
    verdict = check_shape(nested(20 * sys.getrecursionlimit()))
    assert verdict.reason == "stanza-too-large"


def test_a_stanza_at_the_depth_limit_passes() -> None:
    assert check_shape(nested(MAX_DEPTH)).action is Action.ACCEPT
    assert check_shape(nested(MAX_DEPTH + 1)).rejected


def test_what_passes_can_be_copied() -> None:
    """The point of the bound: whatever passes is safe for copy.deepcopy."""
    stanza = nested(MAX_DEPTH)
    assert check_shape(stanza).action is Action.ACCEPT
    copy.deepcopy(stanza)


def test_too_many_elements_are_refused() -> None:
    wide = ET.fromstring(f"{HEAD}{'<active/>' * MAX_ELEMENTS}</message>")
    verdict = check_shape(wide)
    assert verdict.reason == "stanza-too-large"
    assert f"more than {MAX_ELEMENTS} elements" in verdict.text


def test_too_much_text_is_refused() -> None:
    big = ET.fromstring(f"{HEAD}<body>{'x' * MAX_CHARS}</body></message>")
    verdict = check_shape(big)
    assert verdict.reason == "stanza-too-large" and "characters" in verdict.text


def test_huge_attribute_values_count_as_size() -> None:
    big = ET.fromstring(
        f'{HEAD}<origin-id xmlns="urn:xmpp:sid:0" id="{"x" * MAX_CHARS}"/></message>'
    )
    assert check_shape(big).reason == "stanza-too-large"


def test_the_limits_can_be_set_by_the_caller() -> None:
    stanza = ET.fromstring(f"{HEAD}<active/><paused/></message>")
    assert check_shape(stanza, max_elements=2).rejected
    assert check_shape(stanza, max_elements=3).action is Action.ACCEPT
    assert check_shape(stanza, max_depth=1).rejected
    assert check_shape(stanza, max_chars=10).rejected


def test_an_omemo2_message_to_a_thousand_devices_passes() -> None:
    """The largest real message: one <keys> group and one kex key per device."""
    key = base64.b64encode(bytes(198)).decode()
    groups = "".join(
        f'<keys jid="m{n}@h.test"><key rid="{n}" kex="true">{key}</key></keys>'
        for n in range(1, MAX_KEYS + 1)
    )
    stanza = ET.fromstring(
        f'{HEAD}<encrypted xmlns="urn:xmpp:omemo:2"><header sid="1">{groups}</header>'
        f"<payload>{base64.b64encode(bytes(4096)).decode()}</payload></encrypted>"
        '<body>This message is OMEMO encrypted.</body><store xmlns="urn:xmpp:hints"/></message>'
    )
    assert check_shape(stanza).action is Action.ACCEPT
