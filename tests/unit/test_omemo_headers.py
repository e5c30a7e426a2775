"""OMEMO elements read without decrypting; keys removed without touching anything else.

II.1 (words never pass as ciphertext: issue 8, finding 3), I.4/I.5 (keys of devices that
are not approved are removed, every copy: issue 9, point 1).
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET

import pytest

from xmpp_clinic.omemo import (
    LEGACY_NS,
    MAX_DEVICE_ID,
    MAX_KEYS,
    OMEMO2_NS,
    MalformedOmemo,
    OmemoHeader,
    RecipientKey,
    device_id_or_none,
    parse_header,
    strip_keys,
)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# Shaped as OMEMO produces them: a legacy key is a Signal message (0x33, 64+ bytes), an
# OMEMO 2 key 64+ bytes, a legacy IV 12 bytes, an OMEMO 2 payload whole 16-byte blocks.
K1, K2, K3 = (b64(b"\x33" + bytes([n]) * 63) for n in (1, 2, 3))
T1, T2, T3 = (b64(bytes([n]) * 80) for n in (1, 2, 3))
IV = b64(bytes(range(12)))
PAYLOAD = b64(b"ciphertext")  # 10 bytes: padded
BLOCKS = b64(bytes(32))
WORDS = "Patient Hans Mueller K 6 1 bed 12 please review"

LEGACY = f"""<message xmlns="jabber:component:accept" type="groupchat"
  to="ward@clinic.hospital.test" from="alice@hospital.test/phone">
  <encrypted xmlns="eu.siacs.conversations.axolotl">
    <header sid="111">
      <key rid="201">{K1}</key>
      <key prekey="true" rid="202">{K2}</key>
      <key rid="112">{K3}</key>
      <iv>{IV}</iv>
    </header>
    <payload>{PAYLOAD}</payload>
  </encrypted>
  <body>I sent you an OMEMO encrypted message.</body>
  <store xmlns="urn:xmpp:hints"/>
</message>"""

OMEMO2 = f"""<message xmlns="jabber:component:accept" type="groupchat"
  to="ward@clinic.hospital.test" from="kai@hospital.test/kaidan">
  <encrypted xmlns="urn:xmpp:omemo:2">
    <header sid="501">
      <keys jid="bob@hospital.test">
        <key rid="601">{T1}</key>
        <key kex="true" rid="602">{T2}</key>
      </keys>
      <keys jid="kai@hospital.test"><key rid="502">{T3}</key></keys>
    </header>
    <payload>{BLOCKS}</payload>
  </encrypted>
</message>"""


def parse(xml: str) -> OmemoHeader | MalformedOmemo | None:
    return parse_header(ET.fromstring(xml))


def legacy(
    keys: str = f'<key rid="6">{K1}</key>',
    iv: str = f"<iv>{IV}</iv>",
    payload: str = f"<payload>{PAYLOAD}</payload>",
    sid: str = "5",
) -> str:
    return (
        '<message xmlns="jabber:client"><encrypted xmlns="eu.siacs.conversations.axolotl">'
        f'<header sid="{sid}">{keys}{iv}</header>{payload}</encrypted></message>'
    )


def omemo2(groups: str, payload: str = f"<payload>{BLOCKS}</payload>") -> str:
    return (
        '<message xmlns="jabber:client"><encrypted xmlns="urn:xmpp:omemo:2">'
        f'<header sid="1">{groups}</header>{payload}</encrypted></message>'
    )


def code_of(xml: str) -> str:
    result = parse(xml)
    assert isinstance(result, MalformedOmemo), result
    return result.code


# --- reading the header ------------------------------------------------------------


@pytest.mark.requirement("II.1")
def test_legacy_header_lists_sender_and_recipient_devices() -> None:
    header = parse(LEGACY)
    assert header == OmemoHeader(
        namespace=LEGACY_NS,
        sid=111,
        keys=(RecipientKey(201), RecipientKey(202, prekey=True), RecipientKey(112)),
        has_payload=True,
    )


@pytest.mark.requirement("II.1")
def test_omemo2_header_groups_keys_by_jid() -> None:
    header = parse(OMEMO2)
    assert isinstance(header, OmemoHeader)
    assert header.namespace == OMEMO2_NS
    assert header.sid == 501
    assert header.keys == (
        RecipientKey(601, "bob@hospital.test"),
        RecipientKey(602, "bob@hospital.test", prekey=True),
        RecipientKey(502, "kai@hospital.test"),
    )


@pytest.mark.requirement("II.1")
def test_message_without_encryption_has_no_header() -> None:
    assert parse('<message xmlns="jabber:client"><body>hi</body></message>') is None


@pytest.mark.requirement("II.1")
def test_key_transport_without_payload_is_read() -> None:
    header = parse(legacy(payload=""))
    assert isinstance(header, OmemoHeader)
    assert header.has_payload is False


@pytest.mark.requirement("II.1")
def test_missing_sid_is_malformed() -> None:
    xml = legacy().replace(' sid="5"', "")
    assert parse(xml) == MalformedOmemo("missing-sid", "the OMEMO header has no 'sid' attribute")


@pytest.mark.requirement("II.1")
def test_non_numeric_rid_is_malformed() -> None:
    assert code_of(legacy(keys=f'<key rid="6x">{K1}</key>')) == "bad-rid"


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("sid", ["+5", " 5", "5_0", "0", "007", "4294967296", "-1", "٣"])
def test_signed_padded_or_out_of_range_device_ids_are_malformed(sid: str) -> None:
    """Device ids are 1 .. 2^31-1 in canonical digits (XEP-0384; issue 8, finding 9)."""
    assert code_of(legacy(sid=sid)) == "bad-sid"


@pytest.mark.requirement("II.1")
def test_the_largest_device_id_is_read_and_one_more_is_not() -> None:
    header = parse(legacy(sid=str(MAX_DEVICE_ID)))
    assert isinstance(header, OmemoHeader) and header.sid == 2**31 - 1
    assert code_of(legacy(sid=str(MAX_DEVICE_ID + 1))) == "bad-sid"
    assert device_id_or_none("99999999999999999999999") is None


# --- repeated keys for one device (issue 9, point 1: Profanity) ----------------------


@pytest.mark.requirement("II.1")
def test_repeated_legacy_key_for_one_device_is_read_as_one_recipient() -> None:
    """Profanity lists a present occupant twice and sends two keys for the device."""
    header = parse(
        legacy(keys=f'<key rid="6">{K1}</key><key rid="7">{K3}</key><key rid="6">{K2}</key>')
    )
    assert isinstance(header, OmemoHeader)
    assert header.keys == (RecipientKey(6), RecipientKey(7))


@pytest.mark.requirement("II.1")
def test_repeated_omemo2_key_for_one_device_is_read_as_one_recipient() -> None:
    groups = (
        f'<keys jid="bob@h.test"><key rid="7">{T1}</key></keys>'
        f'<keys jid="bob@h.test"><key rid="7">{T2}</key></keys>'
    )
    header = parse(omemo2(groups))
    assert isinstance(header, OmemoHeader)
    assert header.keys == (RecipientKey(7, "bob@h.test"),)


@pytest.mark.requirement("II.1")
def test_same_device_id_for_two_people_is_two_recipients_in_omemo2() -> None:
    groups = (
        f'<keys jid="a@h.test"><key rid="7">{T1}</key></keys>'
        f'<keys jid="b@h.test"><key rid="7">{T2}</key></keys>'
    )
    header = parse(omemo2(groups))
    assert isinstance(header, OmemoHeader) and len(header.keys) == 2


@pytest.mark.requirement("II.1")
def test_huge_key_list_is_refused_without_reading_it_all() -> None:
    keys = "".join(f'<key rid="{n}">{K1}</key>' for n in range(1, MAX_KEYS + 2))
    assert code_of(legacy(keys=keys)) == "too-many-keys"


@pytest.mark.requirement("II.1")
def test_exactly_the_key_cap_is_accepted() -> None:
    keys = "".join(f'<key rid="{n}">{K1}</key>' for n in range(1, MAX_KEYS + 1))
    assert isinstance(parse(legacy(keys=keys)), OmemoHeader)


@pytest.mark.requirement("II.1")
def test_repeated_keys_count_towards_the_cap() -> None:
    """Copies are accepted, but they cannot make a stanza of unbounded work."""
    assert code_of(legacy(keys=f'<key rid="6">{K1}</key>' * (MAX_KEYS + 1))) == "too-many-keys"


# --- structure ----------------------------------------------------------------------


@pytest.mark.requirement("II.1")
def test_two_encrypted_elements_are_malformed() -> None:
    xml = legacy().replace("</message>", f'<encrypted xmlns="{OMEMO2_NS}"/></message>')
    assert code_of(xml) == "multiple-encrypted"


@pytest.mark.requirement("II.1")
def test_unknown_encryption_namespace_is_malformed() -> None:
    xml = '<message xmlns="jabber:client"><encrypted xmlns="urn:example:x"/></message>'
    assert code_of(xml) == "unknown-namespace"


@pytest.mark.requirement("II.1")
def test_missing_header_is_malformed() -> None:
    xml = f'<message xmlns="jabber:client"><encrypted xmlns="{LEGACY_NS}"/></message>'
    assert code_of(xml) == "missing-header"


@pytest.mark.requirement("II.1")
def test_header_without_any_key_is_malformed() -> None:
    assert code_of(legacy(keys="")) == "no-keys"


@pytest.mark.requirement("II.1")
def test_legacy_header_without_iv_is_malformed() -> None:
    assert code_of(legacy(iv="")) == "missing-iv"


@pytest.mark.requirement("II.1")
def test_legacy_header_with_two_ivs_is_malformed() -> None:
    assert code_of(legacy(iv=f"<iv>{IV}</iv><iv>{IV}</iv>")) == "multiple-ivs"


@pytest.mark.requirement("II.1")
def test_two_payloads_are_malformed() -> None:
    assert code_of(legacy(payload=f"<payload>{PAYLOAD}</payload>" * 2)) == "multiple-payloads"


@pytest.mark.requirement("II.1")
def test_omemo2_keys_need_a_bare_jid() -> None:
    assert code_of(omemo2(f'<keys jid="a@h.test/phone"><key rid="7">{T1}</key></keys>')) == (
        "bad-jid"
    )


@pytest.mark.requirement("II.1")
def test_omemo2_keys_without_jid_are_malformed() -> None:
    assert code_of(omemo2(f'<keys><key rid="7">{T1}</key></keys>')) == "bad-jid"


@pytest.mark.requirement("II.1")
def test_free_text_as_an_omemo2_jid_is_malformed() -> None:
    groups = f'<keys jid="Hans Mueller bed 12@h.test"><key rid="7">{T1}</key></keys>'
    assert code_of(omemo2(groups)) == "bad-jid"


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("flag", ["true", "false", "1", "0"])
def test_prekey_flag_is_read_as_a_boolean(flag: str) -> None:
    header = parse(legacy(keys=f'<key rid="6" prekey="{flag}">{K1}</key>'))
    assert isinstance(header, OmemoHeader)
    assert header.keys[0].prekey is (flag in ("true", "1"))


@pytest.mark.requirement("II.1")
def test_a_word_as_prekey_flag_is_malformed() -> None:
    """Issue 8, finding 2: flags are booleans, not a place for text."""
    assert code_of(legacy(keys=f'<key rid="6" prekey="Mueller">{K1}</key>')) == "bad-prekey"


@pytest.mark.requirement("II.1")
def test_a_word_as_kex_flag_is_malformed() -> None:
    groups = f'<keys jid="b@h.test"><key rid="7" kex="yes">{T1}</key></keys>'
    assert code_of(omemo2(groups)) == "bad-kex"


# --- ciphertext is base64 of the size OMEMO produces (issue 8, finding 3) -------------


@pytest.mark.requirement("II.1")
def test_words_as_payload_are_refused_naming_the_payload() -> None:
    result = parse(legacy(payload=f"<payload>{WORDS}</payload>"))
    assert isinstance(result, MalformedOmemo) and result.code == "bad-base64"
    assert "<payload>" in result.text and "Mueller" not in result.text


@pytest.mark.requirement("II.1")
def test_words_as_a_legacy_key_are_refused_naming_the_device() -> None:
    result = parse(legacy(keys=f'<key rid="6">{WORDS}</key>'))
    assert isinstance(result, MalformedOmemo) and result.code == "bad-base64"
    assert "<key> for device 6" in result.text


@pytest.mark.requirement("II.1")
def test_words_as_the_iv_are_refused() -> None:
    assert code_of(legacy(iv=f"<iv>{WORDS}</iv>")) == "bad-base64"


@pytest.mark.requirement("II.1")
def test_words_as_an_omemo2_key_are_refused() -> None:
    assert code_of(omemo2(f'<keys jid="b@h.test"><key rid="7">{WORDS}</key></keys>')) == (
        "bad-base64"
    )


@pytest.mark.requirement("II.1")
def test_a_line_break_inside_base64_is_refused() -> None:
    broken = K1[:40] + "\n" + K1[40:]
    assert code_of(legacy(keys=f'<key rid="6">{broken}</key>')) == "bad-base64"


@pytest.mark.requirement("II.1")
def test_whitespace_around_base64_is_fine() -> None:
    """Pretty-printed XML puts line breaks around the text, never inside it."""
    assert isinstance(parse(legacy(keys=f'<key rid="6">\n  {K1}\n</key>')), OmemoHeader)


@pytest.mark.parametrize(
    "text",
    [
        PAYLOAD.rstrip("="),  # padding missing
        PAYLOAD + "=",  # padding wrong
        "UB==",  # bits after the last byte: no encoder writes this
        b64(b"\xfb\xff\xfe" * 4).replace("+", "-").replace("/", "_"),  # base64url
        "",
    ],
)
@pytest.mark.requirement("II.1")
def test_base64_that_no_encoder_writes_is_refused(text: str) -> None:
    assert code_of(legacy(payload=f"<payload>{text}</payload>")) in (
        "bad-base64",
        "empty-ciphertext",
    )


@pytest.mark.requirement("II.1")
@pytest.mark.parametrize("size", [12, 16])
def test_iv_of_12_or_16_bytes_is_read(size: int) -> None:
    """12 bytes from current clients, 16 from older ones."""
    assert isinstance(parse(legacy(iv=f"<iv>{b64(bytes(size))}</iv>")), OmemoHeader)


@pytest.mark.requirement("II.1")
def test_iv_of_15_bytes_is_refused() -> None:
    result = parse(legacy(iv=f"<iv>{b64(b'Hans Mueller 12')}</iv>"))
    assert isinstance(result, MalformedOmemo) and result.code == "bad-iv"
    assert "<iv>" in result.text


@pytest.mark.requirement("II.1")
def test_legacy_key_of_12_bytes_is_refused() -> None:
    short = b64(bytes([0x33]) + b"Mueller K+6")
    assert code_of(legacy(keys=f'<key rid="6">{short}</key>')) == "bad-key"


@pytest.mark.requirement("II.1")
def test_legacy_key_that_is_not_a_signal_message_is_refused() -> None:
    """Base64 of words is long enough, but a Signal message starts with version 0x33."""
    assert code_of(legacy(keys=f'<key rid="6">{b64((WORDS * 2).encode())}</key>')) == "bad-key"


@pytest.mark.requirement("II.1")
def test_oversized_key_is_refused() -> None:
    huge = b64(bytes([0x33]) + bytes(4096))
    assert code_of(legacy(keys=f'<key rid="6">{huge}</key>')) == "bad-key"


@pytest.mark.requirement("II.1")
def test_omemo2_key_of_12_bytes_is_refused() -> None:
    groups = f'<keys jid="b@h.test"><key rid="7">{b64(b"Mueller K+6.")}</key></keys>'
    assert code_of(omemo2(groups)) == "bad-key"


@pytest.mark.requirement("II.1")
def test_omemo2_payload_of_partial_blocks_is_refused() -> None:
    payload = f"<payload>{b64(WORDS.encode())}</payload>"
    assert code_of(omemo2(f'<keys jid="b@h.test"><key rid="7">{T1}</key></keys>', payload)) == (
        "bad-payload"
    )


@pytest.mark.requirement("II.1")
def test_legacy_payload_of_one_byte_is_read() -> None:
    """AES-GCM without its tag: a one-letter message is one byte."""
    assert isinstance(parse(legacy(payload=f"<payload>{b64(b'x')}</payload>")), OmemoHeader)


@pytest.mark.requirement("II.1")
def test_empty_payload_is_refused() -> None:
    assert code_of(legacy(payload="<payload/>")) == "empty-ciphertext"


# --- removing keys ------------------------------------------------------------------


@pytest.mark.requirement("II.1")
def test_stripping_a_legacy_key_leaves_every_other_byte() -> None:
    message = ET.fromstring(LEGACY)
    stripped = strip_keys(message, [RecipientKey(202)])
    expected = LEGACY.replace(f'<key prekey="true" rid="202">{K2}</key>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_stripping_does_not_touch_the_original() -> None:
    message = ET.fromstring(LEGACY)
    before = ET.tostring(message)
    strip_keys(message, [RecipientKey(201)])
    assert ET.tostring(message) == before


@pytest.mark.requirement("II.1")
def test_stripping_an_omemo2_key_keeps_the_others_of_that_person() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(602, "bob@hospital.test")])
    expected = OMEMO2.replace(f'<key kex="true" rid="602">{T2}</key>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_stripping_keeps_the_bytes_around_the_removed_key() -> None:
    stripped = strip_keys(ET.fromstring(LEGACY), [RecipientKey(201), RecipientKey(112)])
    expected = LEGACY.replace(f'<key rid="201">{K1}</key>', "").replace(
        f'<key rid="112">{K3}</key>', ""
    )
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_stripping_the_last_omemo2_key_of_a_person_drops_the_group() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(502, "kai@hospital.test")])
    expected = OMEMO2.replace(f'<keys jid="kai@hospital.test"><key rid="502">{T3}</key></keys>', "")
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_omemo2_strip_only_matches_the_right_person() -> None:
    stripped = strip_keys(ET.fromstring(OMEMO2), [RecipientKey(601, "kai@hospital.test")])
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(OMEMO2))


@pytest.mark.requirement("II.1")
def test_every_copy_of_an_unapproved_devices_key_is_stripped() -> None:
    """Issue 9, point 1: a repeated key for a device that is not approved goes entirely."""
    xml = legacy(keys=f'<key rid="6">{K1}</key><key rid="7">{K3}</key><key rid="6">{K2}</key>')
    stripped = strip_keys(ET.fromstring(xml), [RecipientKey(6)])
    expected = legacy(keys=f'<key rid="7">{K3}</key>')
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_every_copy_of_an_approved_devices_key_stays() -> None:
    """What is relayed stays decryptable: the recipient's library picks the copy it reads."""
    xml = legacy(keys=f'<key rid="6">{K1}</key><key rid="7">{K3}</key><key rid="6">{K2}</key>')
    stripped = strip_keys(ET.fromstring(xml), [RecipientKey(7)])
    expected = legacy(keys=f'<key rid="6">{K1}</key><key rid="6">{K2}</key>')
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_omemo2_strip_matches_a_jid_written_in_capitals() -> None:
    xml = omemo2(f'<keys jid="Bob@H.test"><key rid="7">{T1}</key><key rid="8">{T2}</key></keys>')
    stripped = strip_keys(ET.fromstring(xml), [RecipientKey(7, "bob@h.test")])
    expected = omemo2(f'<keys jid="Bob@H.test"><key rid="8">{T2}</key></keys>')
    assert ET.tostring(stripped) == ET.tostring(ET.fromstring(expected))


@pytest.mark.requirement("II.1")
def test_a_thousand_omemo2_devices_in_groups_of_one_are_read() -> None:
    """The cap counts keys and groups apart: one device per person is a real thread."""
    groups = "".join(
        f'<keys jid="m{n}@h.test"><key rid="{n}">{T1}</key></keys>' for n in range(1, MAX_KEYS + 1)
    )
    header = parse(omemo2(groups))
    assert isinstance(header, OmemoHeader) and len(header.keys) == MAX_KEYS
