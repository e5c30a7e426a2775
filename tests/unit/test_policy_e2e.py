"""Care threads refuse plaintext and pass messages without content (II.1)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import Action, Verdict
from xmpp_clinic.xmpp.omemo import parse_header

HEAD = '<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test">'


def decide(inner: str, required: bool = True) -> Verdict:
    message = ET.fromstring(f"{HEAD}{inner}</message>")
    return check_e2e(message, parse_header(message), required=required)


OMEMO = (
    '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"><key rid="2">QQ==</key>'
    "<iv>SQ==</iv></header><payload>UA==</payload></encrypted>"
)


def test_plaintext_body_is_refused() -> None:
    verdict = decide("<body>Patient in bed 4 needs 5mg</body>")
    assert verdict.action is Action.REJECT and verdict.reason == "plaintext-refused"


def test_encrypted_message_with_fallback_body_passes() -> None:
    assert (
        decide(f"{OMEMO}<body>I sent you an OMEMO encrypted message</body>").action is Action.ACCEPT
    )


def test_chat_state_passes() -> None:
    assert (
        decide('<composing xmlns="http://jabber.org/protocol/chatstates"/>').action is Action.ACCEPT
    )


def test_displayed_marker_passes() -> None:
    assert decide('<displayed xmlns="urn:xmpp:chat-markers:0" id="m1"/>').action is Action.ACCEPT


def test_delivery_receipt_passes() -> None:
    assert decide('<received xmlns="urn:xmpp:receipts" id="m1"/>').action is Action.ACCEPT


def test_key_transport_without_payload_passes() -> None:
    inner = (
        '<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"><key rid="2">QQ==</key>'
        "<iv>SQ==</iv></header></encrypted>"
    )
    assert decide(inner).action is Action.ACCEPT


def test_plaintext_subject_is_refused() -> None:
    assert decide("<subject>Müller, bed 4</subject>").reason == "plaintext-refused"


def test_empty_subject_passes() -> None:
    assert decide("<subject/>").action is Action.ACCEPT


def test_plaintext_link_is_refused() -> None:
    inner = '<x xmlns="jabber:x:oob"><url>https://upload.h.test/xray.jpg</url></x>'
    assert decide(inner).reason == "plaintext-refused"


def test_plaintext_reaction_is_refused() -> None:
    inner = '<reactions xmlns="urn:xmpp:reactions:0" id="m1"><reaction>👍</reaction></reactions>'
    assert decide(inner).reason == "plaintext-refused"


def test_openpgp_is_refused_as_unsupported() -> None:
    inner = '<openpgp xmlns="urn:xmpp:openpgp:0">LS0t</openpgp>'
    assert decide(inner).reason == "unsupported-encryption"


def test_malformed_omemo_is_refused_with_the_detail() -> None:
    verdict = decide('<encrypted xmlns="eu.siacs.conversations.axolotl"><header/></encrypted>')
    assert verdict.reason == "malformed-omemo" and "missing-sid" in verdict.text


def test_unknown_encryption_namespace_is_refused() -> None:
    verdict = decide('<encrypted xmlns="jabber:x:encrypted">LS0t</encrypted><body>x</body>')
    assert verdict.reason == "malformed-omemo" and "unknown-namespace" in verdict.text


def test_plaintext_passes_only_when_e2e_is_not_required() -> None:
    assert decide("<body>demo</body>", required=False).action is Action.ACCEPT
