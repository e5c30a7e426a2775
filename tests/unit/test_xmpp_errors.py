"""One mapping from domain errors to stanza errors (RFC 6120 8.3; I.12, IV.2)."""

from __future__ import annotations

import pytest
from slixmpp.exceptions import XMPPError

from xmpp_clinic.archive.messages import UnknownId
from xmpp_clinic.jids import InvalidJid
from xmpp_clinic.registry.service import InvalidRequest, UnknownDevice
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import InvalidThread, OutsideUserDomains
from xmpp_clinic.xmpp.errors import (
    STORE_DOWN,
    FormError,
    NotAMember,
    StanzaError,
    error_note,
    maps_domain_errors,
    stanza_error,
)


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (StoreUnavailable("store error (OperationalError)"), ("internal-server-error", "wait")),
        (NotAMember("ward@clinic.hospital.test"), ("item-not-found", "cancel")),
        (InvalidJid("'a@b@c' has more than one '@'"), ("jid-malformed", "modify")),
        (FormError("'name' is required"), ("bad-request", "modify")),
        (InvalidThread("a thread needs at least one member"), ("not-acceptable", "modify")),
        (OutsideUserDomains("cannot add x@elsewhere.test"), ("not-acceptable", "modify")),
        (UnknownDevice("no device 99 of bob@hospital.test is known"), ("not-acceptable", "modify")),
        (InvalidRequest("valid days must be between 1 and 3650"), ("not-acceptable", "modify")),
        (UnknownId("nope"), ("item-not-found", "cancel")),
    ],
)
@pytest.mark.requirement("II.4")
def test_each_domain_error_has_its_stanza_error(
    raised: Exception, expected: tuple[str, str]
) -> None:
    found = stanza_error(raised)
    assert found is not None and (found.condition, found.type) == expected


@pytest.mark.requirement("II.4")
def test_an_unavailable_store_says_try_again_without_its_internals() -> None:
    found = stanza_error(StoreUnavailable("store error (OperationalError)"))
    assert found == StanzaError("internal-server-error", "wait", STORE_DOWN)
    assert "OperationalError" not in found.text and "Try again" in found.text


@pytest.mark.requirement("II.4")
def test_rule_refusals_carry_their_own_sentence() -> None:
    found = stanza_error(OutsideUserDomains("only people of hospital.test can be members"))
    assert found is not None and found.text == "only people of hospital.test can be members"


@pytest.mark.requirement("II.4")
def test_non_members_and_unknown_threads_learn_nothing() -> None:
    assert stanza_error(NotAMember("ward@clinic.hospital.test")) == StanzaError(
        "item-not-found", "cancel"
    )


@pytest.mark.requirement("II.4")
def test_a_bug_is_not_a_domain_error() -> None:
    assert stanza_error(KeyError("x")) is None
    assert error_note(KeyError("x")) is None


@pytest.mark.requirement("II.4")
async def test_a_wrapped_handler_raises_the_stanza_error() -> None:
    @maps_domain_errors
    async def handler() -> None:
        raise StoreUnavailable("down")

    with pytest.raises(XMPPError) as raised:
        await handler()
    assert (raised.value.condition, raised.value.etype) == ("internal-server-error", "wait")
    assert raised.value.text == STORE_DOWN


@pytest.mark.requirement("II.4")
async def test_a_wrapped_handler_lets_bugs_through() -> None:
    @maps_domain_errors
    async def handler() -> None:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await handler()
