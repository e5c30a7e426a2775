"""Every value the allowlist lets through has its real shape (II.1; issue 8, finding 2).

Ids are a bounded token alphabet, language tags BCP 47, stamps XEP-0082, namespaces an
OMEMO version's. ``id="Patient Hans Mueller, K+ 6.1, bed 12"`` reached recipients and the
archive before; now it is refused as ``invalid-value``, and the error never repeats it.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.omemo import parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import Verdict

KEY = base64.b64encode(b"\x33" + bytes(97)).decode()
IV = base64.b64encode(bytes(12)).decode()
OMEMO = (
    f'<encrypted xmlns="eu.siacs.conversations.axolotl"><header sid="1"><key rid="2">{KEY}</key>'
    f"<iv>{IV}</iv></header><payload>UA==</payload></encrypted>"
)
PATIENT = "Patient Hans Mueller, K+ 6.1, bed 12"


def decide(inner: str, attrs: str = 'id="m1"') -> Verdict:
    message = ET.fromstring(
        f'<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test" {attrs}>'
        f"{OMEMO}{inner}</message>"
    )
    return check_e2e(message, parse_header(message))


def refused_as_invalid(verdict: Verdict, *names: str) -> bool:
    return (
        verdict.reason == "invalid-value"
        and all(name in verdict.text for name in names)
        and "Mueller" not in verdict.text
        and "Hans" not in verdict.text
    )


# --- the message id ------------------------------------------------------------------


@pytest.mark.requirement("II.1")
def test_free_text_in_the_message_id_is_refused() -> None:
    verdict = decide("", f'id="{PATIENT}"')
    assert refused_as_invalid(verdict, "'id'", "the message")


@pytest.mark.requirement("II.1")
def test_an_overlong_message_id_is_refused() -> None:
    assert decide("", 'id="' + "a1-" * 50 + '"').reason == "invalid-value"


@pytest.mark.parametrize(
    "message_id",
    [
        "4a8b8dac-acbc-4166-a2fb-286c7561bfa9",  # UUID: Gajim, Dino, Kaidan, Converse.js
        "7C4A0D5E-9F2B-4F7E-8D6A-1B2C3D4E5F60",  # UUID in capitals: Monal
        "0f5c8e3b9a1d4c7e8b2a6f4d3c1e9a7b",  # slixmpp's new_id(): 32 hex digits
        "l4-GNmqZPd1MaA6MZAj0nMTK",  # Conversations: base64url
        "Xz9Kp2rT1qa1b2c3d4e5f60718293a4b5c6d7e8f9",  # Profanity: letters and a hex HMAC
        "Z3Hr5-42",  # Smack
        "purple8d3f1c2a",  # libpurple
        "m1",
    ],
)
@pytest.mark.requirement("II.1")
def test_real_clients_message_ids_pass(message_id: str) -> None:
    assert not decide("", f'id="{message_id}"').rejected


@pytest.mark.requirement("II.1")
def test_a_message_without_id_passes() -> None:
    assert not decide("", "").rejected


@pytest.mark.requirement("II.1")
def test_free_text_as_the_message_language_is_refused() -> None:
    verdict = decide("", 'xml:lang="Hans Mueller"')
    assert refused_as_invalid(verdict, "'xml:lang'")


@pytest.mark.parametrize(
    "tag", ["en", "de", "de-DE", "en-GB", "zh-Hant-TW", "sr-Latn", "x-klingon"]
)
@pytest.mark.requirement("II.1")
def test_language_tags_pass(tag: str) -> None:
    assert not decide("", f'xml:lang="{tag}"').rejected


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("tag", ["Patient", "PHIMARKERABCDEF12x", "de_DE", "e", "en-" + "a" * 40])
def test_words_shaped_like_no_language_tag_are_refused(tag: str) -> None:
    assert decide("", f'xml:lang="{tag}"').reason == "invalid-value"


# --- ids inside allowlisted elements --------------------------------------------------


@pytest.mark.parametrize(
    ("element", "name"),
    [
        ('<origin-id xmlns="urn:xmpp:sid:0" id="{}"/>', "origin-id"),
        ('<replace xmlns="urn:xmpp:message-correct:0" id="{}"/>', "replace"),
        ('<received xmlns="urn:xmpp:receipts" id="{}"/>', "received"),
        ('<displayed xmlns="urn:xmpp:chat-markers:0" id="{}"/>', "displayed"),
        ('<acknowledged xmlns="urn:xmpp:chat-markers:0" id="{}"/>', "acknowledged"),
        ('<stanza-id xmlns="urn:xmpp:sid:0" id="{}" by="w@clinic.h.test"/>', "stanza-id"),
    ],
)
@pytest.mark.requirement("II.1")
def test_free_text_in_an_id_is_refused_naming_the_element(element: str, name: str) -> None:
    verdict = decide(element.format(PATIENT))
    assert refused_as_invalid(verdict, f"<{name}>", "'id'")


@pytest.mark.requirement("II.1")
def test_an_id_of_300_characters_is_refused() -> None:
    assert decide(f'<origin-id xmlns="urn:xmpp:sid:0" id="{"x" * 300}"/>').reason == (
        "invalid-value"
    )


@pytest.mark.requirement("II.1")
def test_free_text_in_the_thread_is_refused() -> None:
    verdict = decide(f"<thread>{PATIENT}</thread>")
    assert refused_as_invalid(verdict, "<thread>")


@pytest.mark.requirement("II.1")
def test_free_text_in_the_threads_parent_is_refused() -> None:
    verdict = decide(f'<thread parent="{PATIENT}">t1</thread>')
    assert refused_as_invalid(verdict, "'parent'", "<thread>")


@pytest.mark.requirement("II.1")
def test_an_id_shaped_thread_passes() -> None:
    assert not decide('<thread parent="e4f1-00">e4f1-22ab</thread>').rejected


@pytest.mark.requirement("II.1")
def test_a_thread_of_300_characters_is_refused() -> None:
    assert decide(f"<thread>{'x' * 300}</thread>").reason == "invalid-value"


@pytest.mark.requirement("II.1")
def test_a_thread_with_child_elements_is_refused() -> None:
    assert decide("<thread><b>Müller</b></thread>").reason == "plaintext-refused"


# --- EME, delay, stanza-id, fallback markers ----------------------------------------


@pytest.mark.requirement("II.1")
def test_an_eme_namespace_that_is_no_omemo_version_is_refused() -> None:
    verdict = decide('<encryption xmlns="urn:xmpp:eme:0" namespace="PHIMARKER:K+6.1"/>')
    assert refused_as_invalid(verdict, "'namespace'", "<encryption>")


@pytest.mark.requirement("II.1")
def test_an_eme_naming_another_encryption_beside_omemo_is_refused() -> None:
    assert decide('<encryption xmlns="urn:xmpp:eme:0" namespace="urn:xmpp:otr:0"/>').reason == (
        "invalid-value"
    )


@pytest.mark.requirement("II.1")
def test_an_eme_name_of_500_characters_is_refused() -> None:
    inner = (
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl" '
        f'name="{"OMEMO " * 100}"/>'
    )
    assert decide(inner).reason == "invalid-value"


@pytest.mark.requirement("II.1")
def test_free_text_as_a_delay_stamp_is_refused() -> None:
    verdict = decide(f'<delay xmlns="urn:xmpp:delay" stamp="{PATIENT}"/>')
    assert refused_as_invalid(verdict, "'stamp'")


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("stamp", ["2025-03-01T08:00:00Z", "2025-03-01T08:00:00.123+01:00"])
def test_xep_0082_delay_stamps_pass(stamp: str) -> None:
    assert not decide(f'<delay xmlns="urn:xmpp:delay" stamp="{stamp}" from="h.test"/>').rejected


@pytest.mark.requirement("II.1")
def test_free_text_as_a_stanza_id_by_is_refused() -> None:
    verdict = decide(f'<stanza-id xmlns="urn:xmpp:sid:0" id="s1" by="{PATIENT}"/>')
    assert refused_as_invalid(verdict, "'by'")


@pytest.mark.requirement("II.1")
def test_a_fallback_marker_for_something_else_than_omemo_is_refused() -> None:
    inner = '<fallback xmlns="urn:xmpp:fallback:0" for="Hans Mueller"/>'
    assert refused_as_invalid(decide(inner), "'for'", "<fallback>")


@pytest.mark.requirement("II.1")
def test_free_text_as_a_fallback_offset_is_refused() -> None:
    inner = (
        '<fallback xmlns="urn:xmpp:fallback:0" for="eu.siacs.conversations.axolotl">'
        '<body start="Hans" end="12"/></fallback>'
    )
    assert decide(inner).reason == "invalid-value"


@pytest.mark.requirement("II.1")
def test_free_text_as_an_eme_name_without_omemo_is_refused() -> None:
    """Without OMEMO nothing replaces the name, so only OMEMO's own names pass."""
    message = ET.fromstring(
        '<message xmlns="jabber:component:accept" type="groupchat" to="w@clinic.h.test">'
        '<active xmlns="http://jabber.org/protocol/chatstates"/>'
        '<encryption xmlns="urn:xmpp:eme:0" namespace="eu.siacs.conversations.axolotl" '
        f'name="{PATIENT}"/></message>'
    )
    verdict = check_e2e(message, parse_header(message))
    assert refused_as_invalid(verdict, "'name'", "<encryption>")
