"""Nicknames in care threads: one form to show, one to compare, one to catch lookalikes.

A nick is how the others in a thread see who wrote; a lookalike of a colleague's nick is
impersonation (issue 8.6; IV.2, II.1). So every nick goes through three steps:

1. **Shown form**: the PRECIS ``NicknameCasePreserved`` profile (RFC 8266): width and
   compatibility forms folded (NFKC), leading/trailing spaces removed, inner runs of
   spaces collapsed. A nick the profile refuses (control or ignorable characters, empty)
   is refused; a nick whose shown form differs from what the client sent (``"Alice "``)
   is refused too, with the form to use, so the client and the room agree on the name.
2. **Compared form**: ``NicknameCaseMapped`` (the same, lower-cased): ``ALICE`` and
   ``alice`` are the same nick.
3. **Skeleton**: the shown and the compared form with accents removed (``Álice`` ->
   ``Alice``) and every character replaced by one representative of its confusable set
   from Unicode's confusables data (the ``confusable-homoglyphs`` package): Cyrillic
   U+0430 and Latin ``a`` share a skeleton, so "Alice" spelt with a Cyrillic A collides
   with ``Alice``. Two nicks of different people may not share a skeleton.

Pure: no XMPP, no I/O.
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass

from confusable_homoglyphs import confusables  # type: ignore[import-untyped]
from precis_i18n import get_profile

from xmpp_clinic.limits import MAX_NICK_CHARS

_SHOWN = get_profile("NicknameCasePreserved")
_COMPARED = get_profile("NicknameCaseMapped")
# Direction marks the confusables data puts around right-to-left characters.
_MARKS = "\u200e\u200f"


class NickProblem(ValueError):
    """A nick that cannot be used; ``str()`` is one sentence saying why and what to do."""


@dataclass(frozen=True)
class Nick:
    """A usable nick: ``shown`` as sent, ``key`` to compare, ``skeletons`` for lookalikes.

    Two skeletons: of the shown form (capital ``I`` looks like ``l``) and of the
    lower-cased one (Cyrillic U+0410 lower-cases to a lookalike of ``a``).
    """

    shown: str
    key: str
    skeletons: frozenset[str]

    def confusable_with(self, other: Nick) -> bool:
        """The same nick, or one that looks like it (IV.2)."""
        return self.key == other.key or bool(self.skeletons & other.skeletons)


def prepare(raw: str) -> Nick:
    """The nick ``raw`` as the room uses it, or :class:`NickProblem` (IV.2)."""
    if len(raw) > MAX_NICK_CHARS:
        raise NickProblem(f"That nickname is too long: at most {MAX_NICK_CHARS} characters.")
    try:
        shown = _SHOWN.enforce(raw)
        key = _COMPARED.enforce(raw)
    except UnicodeError:
        raise NickProblem(
            "That nickname has characters that cannot be shown safely "
            "(control or invisible characters) or is empty."
        ) from None
    if shown != raw:
        raise NickProblem(
            f"That nickname is not in its normal form: use '{shown}' "
            "(no spaces at the ends, no repeated spaces, no special forms of letters)."
        )
    return Nick(shown, key, frozenset((skeleton(shown), skeleton(key))))


def warm_up() -> None:
    """Build the confusable sets now (about 0.3 s) rather than in the first join."""
    _confusable_sets()


def skeleton(key: str) -> str:
    """What ``key`` looks like: accents dropped, lookalike characters made one."""
    decomposed = unicodedata.normalize("NFD", key)
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(_representative(ch) for ch in bare)


def _representative(ch: str) -> str:
    """One character standing for every character ``ch`` can be confused with."""
    return _confusable_sets().get(ch, ch)


@functools.cache
def _confusable_sets() -> dict[str, str]:
    """Each character of Unicode's confusables data -> the least of its confusable set.

    The data lists, per character, what it can be taken for (``I`` -> ``l``, ``l`` ->
    ``1``, ...), not whole sets: joining every pair (union-find) makes the sets, so
    ``I``, ``l`` and ``1`` share one representative. Single characters only (``rn``
    for ``m`` is not caught). Built on first use, about 0.3 s.
    """
    parent: dict[str, str] = {}

    def root(ch: str) -> str:
        while (up := parent.get(ch, ch)) != ch:
            parent[ch] = parent.get(up, up)
            ch = up
        return ch

    for ch, alike in confusables.confusables_data.items():
        for entry in alike:
            other = entry["c"].strip(_MARKS)
            if len(other) == 1:
                a, b = root(ch), root(other)
                if a != b:
                    parent[max(a, b)] = min(a, b)
    return {ch: root(ch) for ch in parent}
