"""Care threads refuse plaintext and pass messages without content (II.1).

The allowlist of what may travel beside OMEMO; the shapes of the values it lets through
are in ``test_policy_values.py``, the gateway's own fallback body in
``test_policy_fallback.py``.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.omemo import parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import Action, Verdict

pytestmark = pytest.mark.requirement("II.1")

HEAD = '<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test">'
KEY = base64.b64encode(b"\x33" + bytes(97)).decode()  # a Signal message's size and version
IV = base64.b64encode(bytes(12)).decode()
PAYLOAD = base64.b64encode(b"ciphertext").decode()
LEGACY_HEADER = f'<header sid="1"><key rid="2">{KEY}</key><iv>{IV}</iv></header>'


def encrypted(header: str = LEGACY_HEADER, payload: str = f"<payload>{PAYLOAD}</payload>") -> str:
    return f'<encrypted xmlns="eu.siacs.conversations.axolotl">{header}{payload}</encrypted>'


OMEMO = encrypted()


def decide(inner: str, required: bool = True) -> Verdict:
    message = ET.fromstring(f"{HEAD}{inner}</message>")
    return check_e2e(message, parse_header(message), required=required)


def refused_naming(inner: str, namespace: str) -> bool:
    verdict = decide(inner)
    return (
        verdict.reason == "plaintext-refused"
        and f"'{namespace}'" in verdict.text
        and "Müller" not in verdict.text
    )


# --- plaintext without OMEMO ---------------------------------------------------------


def test_plaintext_body_is_refused() -> None:
    verdict = decide("<body>Patient in bed 4 needs 5mg</body>")
    assert verdict.action is Action.REJECT and verdict.reason == "plaintext-refused"
    assert verdict.text == (
        "Unencrypted messages are not allowed in care threads (<body> in namespace "
        "'jabber:client'); enable OMEMO and resend."
    )


def test_a_fallback_wording_without_omemo_is_still_plaintext() -> None:
    """Only a message with no OMEMO element is refused as plaintext; this one has none."""
    assert decide("<body>This message is OMEMO encrypted.</body>").reason == "plaintext-refused"


def test_plaintext_subject_is_refused() -> None:
    assert decide("<subject>Müller, bed 4</subject>").reason == "plaintext-refused"


def test_empty_subject_is_refused_too() -> None:
    """Clearing the subject is the administrators' job; a member's <subject/> is refused."""
    assert decide("<subject/>").reason == "plaintext-refused"


def test_plaintext_passes_only_when_e2e_is_not_required() -> None:
    assert decide("<body>demo</body>", required=False).action is Action.ACCEPT


def test_openpgp_is_refused_as_unsupported() -> None:
    inner = '<openpgp xmlns="urn:xmpp:openpgp:0">LS0t</openpgp>'
    assert decide(inner).reason == "unsupported-encryption"


# --- messages without content pass -------------------------------------------------


def test_chat_state_passes() -> None:
    assert (
        decide('<composing xmlns="http://jabber.org/protocol/chatstates"/>').action is Action.ACCEPT
    )


def test_displayed_marker_passes() -> None:
    assert decide('<displayed xmlns="urn:xmpp:chat-markers:0" id="m1"/>').action is Action.ACCEPT


def test_delivery_receipt_passes() -> None:
    assert decide('<received xmlns="urn:xmpp:receipts" id="m1"/>').action is Action.ACCEPT


def test_key_transport_without_payload_passes_unchanged() -> None:
    assert decide(encrypted(payload="")).action is Action.ACCEPT


def test_omemo_message_without_body_passes_unchanged() -> None:
    inner = f'{OMEMO}<store xmlns="urn:xmpp:hints"/><origin-id xmlns="urn:xmpp:sid:0" id="o1"/>'
    assert decide(inner).action is Action.ACCEPT


# --- the OMEMO element itself ---------------------------------------------------------


def test_malformed_omemo_is_refused_with_the_detail() -> None:
    verdict = decide('<encrypted xmlns="eu.siacs.conversations.axolotl"><header/></encrypted>')
    assert verdict.reason == "malformed-omemo" and "missing-sid" in verdict.text


def test_unknown_encryption_namespace_is_refused() -> None:
    verdict = decide('<encrypted xmlns="jabber:x:encrypted">LS0t</encrypted><body>x</body>')
    assert verdict.reason == "malformed-omemo" and "unknown-namespace" in verdict.text


def test_words_as_payload_are_refused_as_malformed_omemo() -> None:
    """Issue 8, finding 3: 'Patient Hans Mueller ...' passed the old base64 check."""
    payload = "<payload>Patient Hans Mueller K 6 1 bed 12 please review</payload>"
    verdict = decide(encrypted(payload=payload))
    assert verdict.reason == "malformed-omemo" and "<payload>" in verdict.text
    assert "Mueller" not in verdict.text


def test_unknown_attribute_inside_omemo_is_refused() -> None:
    header = f'<header sid="1" note="BP"><key rid="2">{KEY}</key><iv>{IV}</iv></header>'
    assert decide(encrypted(header=header)).reason == "plaintext-refused"


def test_kex_flag_on_a_legacy_key_is_refused() -> None:
    """Each version's own attributes only: kex is OMEMO 2's, prekey legacy's."""
    header = f'<header sid="1"><key rid="2" kex="true">{KEY}</key><iv>{IV}</iv></header>'
    assert decide(encrypted(header=header)).reason == "plaintext-refused"


def test_omemo2_structure_inside_a_legacy_header_is_refused() -> None:
    """A key hidden where this version's parser does not look would skip the device check."""
    header = (
        f'<header sid="1"><key rid="2">{KEY}</key>'
        f'<keys jid="x@h.test"><key rid="99">{KEY}</key></keys><iv>{IV}</iv></header>'
    )
    assert decide(encrypted(header=header)).reason == "plaintext-refused"


def test_stray_element_inside_encrypted_is_refused() -> None:
    inner = OMEMO.replace("</encrypted>", "<body>Müller</body></encrypted>")
    assert decide(inner).reason == "plaintext-refused"


# --- the allowlist: everything not known to be content-free is refused -----------------


def test_plaintext_link_is_refused() -> None:
    inner = '<x xmlns="jabber:x:oob"><url>https://upload.h.test/xray.jpg</url></x>'
    assert decide(inner).reason == "plaintext-refused"


def test_plaintext_reaction_is_refused() -> None:
    inner = '<reactions xmlns="urn:xmpp:reactions:0" id="m1"><reaction>👍</reaction></reactions>'
    assert decide(inner).reason == "plaintext-refused"


def test_forwarded_plaintext_is_refused() -> None:
    inner = (
        '<forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client">'
        "<body>Müller, bed 4: 5mg</body></message></forwarded>"
    )
    assert refused_naming(inner, "urn:xmpp:forward:0")


def test_sims_reference_is_refused() -> None:
    inner = (
        '<reference xmlns="urn:xmpp:reference:0" type="data" '
        'uri="https://upload.h.test/Müller-xray.jpg"/>'
    )
    assert refused_naming(inner, "urn:xmpp:reference:0")


def test_data_form_with_values_is_refused() -> None:
    inner = (
        '<x xmlns="jabber:x:data" type="submit"><field var="patient">'
        "<value>Müller</value></field></x>"
    )
    assert refused_naming(inner, "jabber:x:data")


def test_body_in_another_namespace_is_refused_even_beside_omemo() -> None:
    assert refused_naming(f'{OMEMO}<body xmlns="urn:other">Müller, bed 4</body>', "urn:other")


def test_oob_link_next_to_omemo_is_refused_without_asking_to_enable_omemo() -> None:
    """The sender has OMEMO on: the text says what is outside it, not 'enable OMEMO'."""
    inner = f'{OMEMO}<x xmlns="jabber:x:oob"><url>https://upload.h.test/xray.jpg</url></x>'
    verdict = decide(inner)
    assert refused_naming(inner, "jabber:x:oob")
    assert "outside OMEMO" in verdict.text and "enable OMEMO" not in verdict.text


def test_xhtml_beside_omemo_is_refused() -> None:
    inner = (
        f'{OMEMO}<html xmlns="http://jabber.org/protocol/xhtml-im">'
        '<body xmlns="http://www.w3.org/1999/xhtml">Müller</body></html>'
    )
    assert refused_naming(inner, "http://jabber.org/protocol/xhtml-im")


def test_unknown_empty_element_is_refused() -> None:
    assert refused_naming(f'{OMEMO}<spoiler xmlns="urn:xmpp:spoiler:0"/>', "urn:xmpp:spoiler:0")


def test_text_inside_a_chat_state_is_refused() -> None:
    inner = '<composing xmlns="http://jabber.org/protocol/chatstates">Müller</composing>'
    assert refused_naming(inner, "http://jabber.org/protocol/chatstates")


def test_unknown_attribute_on_an_allowed_marker_is_refused() -> None:
    state = '<active xmlns="http://jabber.org/protocol/chatstates" note="BP 180"/>'
    verdict = decide(state)
    assert verdict.reason == "plaintext-refused" and "'note'" in verdict.text
    assert "180" not in verdict.text


def test_muc_user_x_with_children_is_refused() -> None:
    inner = (
        f'{OMEMO}<x xmlns="http://jabber.org/protocol/muc#user"><invite to="eve@h.test">'
        "<reason>Müller</reason></invite></x>"
    )
    assert refused_naming(inner, "http://jabber.org/protocol/muc#user")


def test_text_directly_inside_the_message_is_refused() -> None:
    verdict = decide(f"Müller, bed 4{OMEMO}")
    assert verdict.reason == "plaintext-refused" and "Müller" not in verdict.text


def test_fallback_marker_without_omemo_is_refused() -> None:
    inner = '<fallback xmlns="urn:xmpp:fallback:0" for="urn:xmpp:omemo:2"/>'
    assert refused_naming(inner, "urn:xmpp:fallback:0")


def test_fallback_marker_with_text_is_refused() -> None:
    inner = f'{OMEMO}<fallback xmlns="urn:xmpp:fallback:0"><body>Müller</body></fallback>'
    assert decide(inner).reason == "plaintext-refused"


def test_conversations_omemo_groupchat_message_passes() -> None:
    inner = (
        f"<body>I sent you an OMEMO encrypted message</body>{OMEMO}"
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl"/>'
        '<markable xmlns="urn:xmpp:chat-markers:0"/><origin-id xmlns="urn:xmpp:sid:0" id="o1"/>'
        '<active xmlns="http://jabber.org/protocol/chatstates"/>'
        '<request xmlns="urn:xmpp:receipts"/><store xmlns="urn:xmpp:hints"/>'
        '<no-copy xmlns="urn:xmpp:hints"/><thread>4f1c7e0a-thread</thread>'
        '<x xmlns="http://jabber.org/protocol/muc#user"/>'
        '<delay xmlns="urn:xmpp:delay" stamp="2025-03-01T08:00:00Z"/>'
        '<replace xmlns="urn:xmpp:message-correct:0" id="m0"/>'
    )
    assert not decide(inner).rejected
