"""Beside OMEMO, the body is the gateway's own fallback text (II.1, II.4; issue 9, point 2).

Profanity's fallback was taken for plaintext and its sender told to "enable OMEMO". Now
any ``<body>`` beside a valid OMEMO element -- every client's wording, any language,
several bodies, or a patient's name -- is replaced before archiving and fan-out: the
verdict is a change (MODIFY) carrying the new stanza, and nothing of the old body is in it.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.omemo import parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.fallback import FALLBACK_TEXT
from xmpp_clinic.policy.verdict import Action, Verdict

KEY = base64.b64encode(b"\x33" + bytes(97)).decode()
IV = base64.b64encode(bytes(12)).decode()
OMEMO = (
    f'<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"><key rid="2">{KEY}</key>'
    f"<iv>{IV}</iv></header><payload>UA==</payload></encrypted>"
)
OMEMO2 = (
    '<encrypted xmlns="urn:xmpp:omemo:2"><header sid="1"><keys jid="bob@h.test">'
    f'<key rid="2">{base64.b64encode(bytes(80)).decode()}</key></keys></header>'
    f"<payload>{base64.b64encode(bytes(32)).decode()}</payload></encrypted>"
)
HEAD = '<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test" id="m1">'
OWN_BODY = f'<body xml:lang="en">{FALLBACK_TEXT}</body>'

WORDINGS = {
    "Conversations": (
        "I sent you an OMEMO encrypted message but your client doesn\u2019t seem to support "
        "that. Find more information on https://conversations.im/omemo"
    ),
    "Gajim, Profanity": (
        "You received a message encrypted with OMEMO but your client doesn't support OMEMO."
    ),
    "Psi": (
        "You received a message encrypted with OMEMO but your client doesn't support OMEMO "
        "or its support is currently disabled."
    ),
    "Dino, Monal": "[This message is OMEMO encrypted]",
    "Kaidan (QXmpp)": "This message is encrypted with OMEMO 2 but could not be decrypted",
    "slixmpp-omemo, python-omemo": "This message is OMEMO encrypted.",
    "slixmpp EME template": (
        "This message is encrypted with Legacy OMEMO (eu.siacs.conversations.axolotl)"
    ),
}


def decide(inner: str) -> Verdict:
    message = ET.fromstring(f"{HEAD}{inner}</message>")
    return check_e2e(message, parse_header(message))


def sent_on(verdict: Verdict) -> bytes:
    """The stanza the gateway archives and relays."""
    assert verdict.action is Action.MODIFY and verdict.reason == "fallback-replaced"
    assert verdict.stanza is not None
    return ET.tostring(verdict.stanza)


def expected(inner: str) -> bytes:
    return ET.tostring(ET.fromstring(f"{HEAD}{inner}</message>"))


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("client", sorted(WORDINGS))
def test_every_clients_fallback_wording_is_replaced_by_the_gateways(client: str) -> None:
    verdict = decide(f"<body>{WORDINGS[client]}</body>{OMEMO}")
    assert sent_on(verdict) == expected(f"{OWN_BODY}{OMEMO}")


@pytest.mark.requirement("II.1")
def test_profanity_message_is_relayed_not_refused() -> None:
    """Issue 9: Profanity's sender was told 'Unencrypted messages are not allowed'."""
    inner = (
        f"{OMEMO}"
        '<encryption xmlns="urn:xmpp:eme:0" name="OMEMO" '
        'namespace="eu.siacs.conversations.axolotl"/>'
        f"<body>{WORDINGS['Gajim, Profanity']}</body>"
        '<request xmlns="urn:xmpp:receipts"/><markable xmlns="urn:xmpp:chat-markers:0"/>'
        '<store xmlns="urn:xmpp:hints"/>'
    )
    verdict = decide(inner)
    assert sent_on(verdict) == expected(
        inner.replace(f"<body>{WORDINGS['Gajim, Profanity']}</body>", OWN_BODY)
    )


@pytest.mark.requirement("II.1")
def test_patient_text_in_the_body_never_leaves() -> None:
    verdict = decide(f"{OMEMO}<body>Patient Hans Mueller, K+ 6.1, bed 12: please review</body>")
    relayed = sent_on(verdict).decode()
    assert "Mueller" not in relayed and "6.1" not in relayed and FALLBACK_TEXT in relayed
    assert "Mueller" not in verdict.text


@pytest.mark.requirement("II.1")
def test_several_bodies_in_any_language_become_one() -> None:
    inner = (
        f'<body xml:lang="de">Herr Müller, Bett 12</body>{OMEMO}'
        '<body xml:lang="Hans Mueller">K+ 6.1</body><body>bed 12</body>'
    )
    assert sent_on(decide(inner)) == expected(f"{OWN_BODY}{OMEMO}")


@pytest.mark.requirement("II.1")
def test_body_with_child_elements_is_replaced() -> None:
    inner = f"{OMEMO}<body>Herr <b>Müller</b></body>"
    assert sent_on(decide(inner)) == expected(f"{OMEMO}{OWN_BODY}")


@pytest.mark.requirement("II.1")
def test_omemo2_message_gets_the_gateways_body_and_eme_name() -> None:
    """Kaidan: OMEMO 2, its own wording, EME and an XEP-0428 marker."""
    inner = (
        f"{OMEMO2}<body>{WORDINGS['Kaidan (QXmpp)']}</body>"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:omemo:2" name="OMEMO 2"/>'
        '<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:omemo:2"><body/></fallback>'
    )
    assert sent_on(decide(inner)) == expected(
        f"{OMEMO2}{OWN_BODY}"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:omemo:2" name="OMEMO 2"/>'
        '<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:omemo:2"/>'
    )


@pytest.mark.requirement("II.1")
def test_an_eme_name_in_other_words_is_replaced_by_the_versions_own() -> None:
    inner = (
        f"{OMEMO}{OWN_BODY}"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl" '
        'name="Hans Mueller bed 12"/>'
    )
    assert sent_on(decide(inner)) == expected(
        f"{OMEMO}{OWN_BODY}"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl" '
        'name="OMEMO"/>'
    )


@pytest.mark.requirement("II.1")
def test_a_fallback_marker_with_ranges_says_the_whole_body_is_fallback() -> None:
    inner = (
        f"{OMEMO}<body>Herr Müller</body>"
        '<fallback xmlns="urn:xmpp:fallback:0"><body start="0" end="11"/></fallback>'
    )
    assert sent_on(decide(inner)) == expected(
        f'{OMEMO}{OWN_BODY}<fallback xmlns="urn:xmpp:fallback:0" '
        'for="eu.siacs.conversations.axolotl"/>'
    )


@pytest.mark.requirement("II.1")
def test_a_message_that_already_carries_the_gateways_body_passes_unchanged() -> None:
    inner = (
        f"{OMEMO}{OWN_BODY}"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl"/>'
    )
    assert decide(inner).action is Action.ACCEPT


@pytest.mark.requirement("II.1")
def test_a_message_without_body_gets_none() -> None:
    """Key transport and heartbeats stay without a body: clients would show it."""
    assert decide(f'{OMEMO}<store xmlns="urn:xmpp:hints"/>').action is Action.ACCEPT


@pytest.mark.requirement("II.1")
def test_everything_else_stays_in_place() -> None:
    inner = (
        '<active xmlns="http://jabber.org/protocol/chatstates"/>'
        f"<body>{WORDINGS['Dino, Monal']}</body>\n  {OMEMO}\n  "
        '<origin-id xmlns="urn:xmpp:sid:0" id="o1"/><thread>t-1</thread>'
    )
    assert sent_on(decide(inner)) == expected(
        inner.replace(f"<body>{WORDINGS['Dino, Monal']}</body>", OWN_BODY)
    )


@pytest.mark.requirement("II.1")
def test_the_received_stanza_is_not_changed() -> None:
    message = ET.fromstring(f"{HEAD}<body>Herr Müller</body>{OMEMO}</message>")
    before = ET.tostring(message)
    check_e2e(message, parse_header(message))
    assert ET.tostring(message) == before
