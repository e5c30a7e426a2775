"""Nick preparation and lookalikes, without a stream (issue 8.6; IV.2)."""

from __future__ import annotations

import pytest

from xmpp_clinic.limits import MAX_NICK_CHARS
from xmpp_clinic.nicks import NickProblem, prepare

pytestmark = pytest.mark.requirement("IV.2")

ALICE = prepare("Alice")


@pytest.mark.parametrize(
    "nick",
    [
        "alice",
        "ALICE",
        "\u0410lice",  # Cyrillic capital A
        "\u0430lice",  # Cyrillic small a
        "\u00c1lice",  # A with acute
        "AIice",  # capital I for small l
        "A1ice",
    ],
)
def test_lookalikes_of_a_nick_are_confusable_with_it(nick: str) -> None:
    assert prepare(nick).confusable_with(ALICE)


@pytest.mark.parametrize("nick", ["Alicia", "Bob", "Al", "Alice2", "Dr Alice"])
def test_different_nicks_are_not_confusable(nick: str) -> None:
    assert not prepare(nick).confusable_with(ALICE)


def test_a_nick_at_the_limit_is_fine_and_one_over_is_refused() -> None:
    assert prepare("a" * MAX_NICK_CHARS).shown == "a" * MAX_NICK_CHARS
    with pytest.raises(NickProblem, match=f"at most {MAX_NICK_CHARS} characters"):
        prepare("a" * (MAX_NICK_CHARS + 1))


@pytest.mark.parametrize(
    "nick",
    [
        "Alice ",
        " Alice",
        "Al  ice",
        "A\u0301lice",  # A + combining acute: the normal form is one character
        "\uff21lice",  # fullwidth A: the normal form is a plain A
    ],
)
def test_a_nick_not_in_normal_form_is_refused_with_the_form_to_use(nick: str) -> None:
    with pytest.raises(NickProblem, match="use '"):
        prepare(nick)


@pytest.mark.parametrize("nick", ["", "Bo\u200bb", "\u2066Bob"])
def test_empty_or_invisible_characters_are_refused(nick: str) -> None:
    with pytest.raises(NickProblem, match="cannot be shown safely"):
        prepare(nick)


def test_the_shown_form_keeps_case_and_the_key_does_not() -> None:
    assert (ALICE.shown, ALICE.key) == ("Alice", "alice")
