"""Who is in a thread right now: occupants, their nicks and sessions (XEP-0045).

Pure bookkeeping, no stanzas. One person may be present with several resources under
one nick (XEP-0045 multi-session); a nick belongs to one person at a time, and stays
bound to that person after they leave (issue 8.6): nobody else may take it, or anything
that looks like it, until its holder uses another nick.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

from xmpp_clinic.nicks import Nick, NickProblem, prepare


def make_occupant_id(thread_jid: str, bare_jid: str) -> str:
    """A stable XEP-0421 occupant id: the same person keeps it across joins and nicks.

    Threads are non-anonymous, so the id need not hide the real JID; a digest keeps it
    short and stable without storing anything.
    """
    digest = hashlib.sha256(f"occupant-id\0{thread_jid}\0{bare_jid}".encode()).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


@dataclass
class Occupant:
    """One joined session: the real full JID, the nick, and its latest presence payload."""

    jid: str
    bare: str
    nick: str
    occupant_id: str
    payload: list[ET.Element] = field(default_factory=list)  # show, caps (presence_filter)


class Room:
    """The occupants of one thread, in join order."""

    def __init__(self) -> None:
        self._by_jid: dict[str, Occupant] = {}
        self._bound: dict[str, Nick] = {}  # bare JID -> the nick it last used here

    def bind(self, bare: str, nick: Nick) -> None:
        """``nick`` is ``bare``'s now; their previous nick is free again."""
        self._bound[bare] = nick

    def bindings(self) -> dict[str, str]:
        """Bare JID -> the nick bound to it (shown form)."""
        return {bare: nick.shown for bare, nick in self._bound.items()}

    def clash(self, bare: str, nick: Nick) -> tuple[str, bool] | None:
        """(the nick ``nick`` clashes with, whether its holder is present), if any.

        A clash is a nick of another person, present or bound, that is the same nick or
        looks like it (issue 8.6).
        """
        present = {o.bare: o.nick for o in self._by_jid.values() if o.bare != bare}
        for shown in present.values():
            if nick.confusable_with(_prepared(shown)):
                return shown, True
        for other, bound in self._bound.items():
            if other != bare and other not in present and nick.confusable_with(bound):
                return bound.shown, False
        return None

    def __bool__(self) -> bool:
        return bool(self._by_jid)

    def get(self, jid: str) -> Occupant | None:
        return self._by_jid.get(jid)

    def add(self, occupant: Occupant) -> None:
        self._by_jid[occupant.jid] = occupant

    def clear(self) -> None:
        """Every session gone (a shutdown); nick bindings stay."""
        self._by_jid.clear()

    def remove(self, jid: str) -> Occupant | None:
        return self._by_jid.pop(jid, None)

    def sessions(self) -> list[Occupant]:
        return list(self._by_jid.values())

    def sessions_of(self, bare: str) -> list[Occupant]:
        return [o for o in self._by_jid.values() if o.bare == bare]

    def with_nick(self, nick: str) -> list[Occupant]:
        return [o for o in self._by_jid.values() if o.nick == nick]

    def holder(self, nick: str) -> str | None:
        """The bare JID using ``nick``, if anyone."""
        found = self.with_nick(nick)
        return found[0].bare if found else None

    def nicks(self) -> dict[str, Occupant]:
        """Each nick once, presented by its first session (what other occupants see)."""
        heads: dict[str, Occupant] = {}
        for occupant in self._by_jid.values():
            heads.setdefault(occupant.nick, occupant)
        return heads


@functools.lru_cache(maxsize=1024)
def _prepared(shown: str) -> Nick:
    """The prepared form of a nick the room already holds (it passed :func:`prepare`)."""
    try:
        return prepare(shown)
    except NickProblem:  # not reached for joined nicks; compared as it is if it were
        return Nick(shown, shown, frozenset({shown}))
