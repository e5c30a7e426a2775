"""Reason codes and the one table from reason to XMPP error (II.1, I.4, IV.2, I.12).

Every refusal the sender sees is looked up here; policy refusals keep the wire form
clients have seen since the first release: ``policy-violation``/``modify`` with the code
as ``<CODE xmlns='urn:xmpp-clinic:policy:0'/>`` inside ``<error>``.
"""

from __future__ import annotations

import pytest

from xmpp_clinic.policy.verdict import (
    DEFAULT_REFUSAL,
    NOT_REFUSALS,
    REFUSALS,
    ReasonCode,
    Refusal,
    Verdict,
    refusal,
)

pytestmark = pytest.mark.requirement("I.12", "II.1", "I.4", "IV.2")

POLICY_CODES = {
    ReasonCode.STANZA_TOO_LARGE,
    ReasonCode.NOT_A_MEMBER,
    ReasonCode.MALFORMED_OMEMO,
    ReasonCode.INVALID_VALUE,
    ReasonCode.UNSUPPORTED_ENCRYPTION,
    ReasonCode.PLAINTEXT_REFUSED,
    ReasonCode.SENDER_DEVICE_NOT_APPROVED,
    ReasonCode.RECIPIENT_DEVICE_NOT_APPROVED,
    ReasonCode.NO_APPROVED_RECIPIENT,
    ReasonCode.REGISTRY_UNAVAILABLE,
    ReasonCode.STORE_UNAVAILABLE,
    ReasonCode.POLICY_ERROR,
}


def test_every_refusal_code_has_an_xmpp_error() -> None:
    assert set(REFUSALS) == set(ReasonCode) - NOT_REFUSALS
    for code, entry in REFUSALS.items():
        assert entry.text.endswith(".") and "\n" not in entry.text, code


def test_policy_refusals_keep_their_wire_form() -> None:
    """policy-violation/modify with the code inside <error>, as clients have seen it."""
    for code in POLICY_CODES:
        entry = refusal(code)
        assert (entry.condition, entry.type, entry.tagged) == ("policy-violation", "modify", True)
    assert refusal("plaintext-refused") == REFUSALS[ReasonCode.PLAINTEXT_REFUSED]


def test_relay_refusals_keep_their_conditions_untagged() -> None:
    assert refusal(ReasonCode.NOT_OCCUPANT) == Refusal(
        "not-acceptable", "cancel", "Only occupants of this thread may send to it.", False
    )
    assert (refusal(ReasonCode.PRIVATE_MESSAGE).condition, refusal("private-message").type) == (
        "forbidden",
        "cancel",
    )
    assert refusal(ReasonCode.SUBJECT_BY_ADMINS).type == "auth"
    for code in (ReasonCode.NOT_CHECKED, ReasonCode.NOT_STORED):
        assert (refusal(code).condition, refusal(code).type) == ("internal-server-error", "wait")


def test_an_unknown_code_gets_the_default_policy_violation() -> None:
    assert refusal("stripped") == DEFAULT_REFUSAL
    assert (DEFAULT_REFUSAL.condition, DEFAULT_REFUSAL.type) == ("policy-violation", "modify")


def test_a_verdict_brings_its_own_sentence_to_the_error() -> None:
    verdict = Verdict.reject(ReasonCode.SENDER_DEVICE_NOT_APPROVED, "Your device 7 was revoked.")
    assert verdict.refusal == Refusal(
        "policy-violation", "modify", "Your device 7 was revoked.", True
    )
    bare = Verdict.reject(ReasonCode.POLICY_ERROR, "")
    assert bare.refusal == REFUSALS[ReasonCode.POLICY_ERROR]
    # A StrEnum: the code reads as its string in logs, audit events and the error element.
    assert f"{verdict.reason}" == "sender-device-not-approved" == verdict.reason


def test_replacing_the_fallback_body_is_a_change_never_a_refusal() -> None:
    """Issue 9: the gateway's own fallback text is the normal path; it has no error."""
    assert ReasonCode.FALLBACK_REPLACED in NOT_REFUSALS
    assert ReasonCode.FALLBACK_REPLACED not in REFUSALS


def test_new_codes_keep_their_names() -> None:
    """Operators grep logs and audit events for these strings: they are stable."""
    assert [
        ReasonCode.STANZA_TOO_LARGE,
        ReasonCode.INVALID_VALUE,
        ReasonCode.FALLBACK_REPLACED,
    ] == [
        "stanza-too-large",
        "invalid-value",
        "fallback-replaced",
    ]
