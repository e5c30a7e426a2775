"""Fingerprints read as the phone shows them, so IT can compare before approving (I.4)."""

from __future__ import annotations

import base64

import pytest
import xeddsa
from omemo.session_manager import SessionManager

from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.fingerprint import (
    BadIdentityKey,
    fingerprint,
    format_fingerprint,
    identity_key_from_bundle,
    normalise,
)

# One key pair, as a legacy bundle (Curve25519, 0x05 prefix) and an OMEMO 2 bundle (Ed25519).
LEGACY_IK = base64.b64decode("BUcB0ISIRR9UWkCftYrj5YWBykCsP38RRpjNcd6sc8oB")
OMEMO2_IK = base64.b64decode("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
HEX = "4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01"


@pytest.mark.requirement("I.4")
def test_legacy_fingerprint_drops_the_type_byte() -> None:
    key = identity_key_from_bundle(LEGACY_NS, LEGACY_IK)
    assert fingerprint(LEGACY_NS, key) == HEX


@pytest.mark.requirement("I.4")
def test_omemo2_fingerprint_is_the_curve25519_form_of_the_ed25519_key() -> None:
    key = identity_key_from_bundle(OMEMO2_NS, OMEMO2_IK)
    assert fingerprint(OMEMO2_NS, key) == HEX


@pytest.mark.requirement("I.4")
def test_fingerprint_matches_python_omemo() -> None:
    ed = identity_key_from_bundle(OMEMO2_NS, OMEMO2_IK)
    assert "".join(SessionManager.format_identity_key(ed)) == fingerprint(OMEMO2_NS, ed)


@pytest.mark.requirement("I.4")
def test_random_keys_agree_with_python_omemo() -> None:
    for seed in range(5):
        priv = xeddsa.seed_to_priv(bytes([seed]) * 32)
        ed = xeddsa.priv_to_ed25519_pub(priv)
        curve = xeddsa.priv_to_curve25519_pub(priv)
        expected = "".join(SessionManager.format_identity_key(ed))
        assert fingerprint(OMEMO2_NS, ed) == expected
        assert (
            fingerprint(LEGACY_NS, identity_key_from_bundle(LEGACY_NS, b"\x05" + curve)) == expected
        )


@pytest.mark.requirement("I.4")
def test_conversations_shows_eight_lowercase_groups() -> None:
    assert format_fingerprint(HEX) == (
        "4701d084 88451f54 5a409fb5 8ae3e585 81ca40ac 3f7f1146 98cd71de ac73ca01"
    )


@pytest.mark.requirement("I.4")
def test_gajim_shows_upper_case_four_groups_per_line() -> None:
    assert format_fingerprint(HEX, "gajim") == (
        "4701D084 88451F54 5A409FB5 8AE3E585\n81CA40AC 3F7F1146 98CD71DE AC73CA01"
    )


@pytest.mark.requirement("I.4")
def test_fingerprint_typed_from_a_screen_is_normalised() -> None:
    assert (
        normalise("4701D084 88451F54 5A409FB5 8AE3E585\n81CA40AC 3F7F1146 98CD71DE AC73CA01") == HEX
    )
    assert normalise("05" + HEX) == HEX
    with pytest.raises(ValueError):
        normalise("4701d084")


@pytest.mark.requirement("I.4")
def test_legacy_key_without_type_byte_is_refused() -> None:
    with pytest.raises(BadIdentityKey):
        identity_key_from_bundle(LEGACY_NS, LEGACY_IK[1:])


@pytest.mark.requirement("I.4")
def test_omemo2_key_of_wrong_length_is_refused() -> None:
    with pytest.raises(BadIdentityKey):
        identity_key_from_bundle(OMEMO2_NS, LEGACY_IK)


@pytest.mark.requirement("I.4")
def test_omemo2_key_off_the_curve_is_refused() -> None:
    with pytest.raises(BadIdentityKey):
        fingerprint(OMEMO2_NS, b"\xff" * 32)
