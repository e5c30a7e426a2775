"""Plain data about threads and members, and the rules for valid names (IV.2).

Nothing here knows about stanzas or SQL; the XMPP layer and the CLI both speak these types.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Literal, get_args

from xmpp_clinic.jids import InvalidJid, bare_jid, domain_of
from xmpp_clinic.limits import MAX_TITLE_CHARS

Affiliation = Literal["owner", "admin", "member"]
Kind = Literal["group", "direct"]
AFFILIATIONS: tuple[Affiliation, ...] = get_args(Affiliation)
KINDS: tuple[Kind, ...] = get_args(Kind)

# A thread name becomes the localpart of the room JID: keep it to characters every
# client and server accepts without escaping.
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ThreadError(Exception):
    """A thread operation that cannot be done; ``str()`` is one human sentence."""


class ThreadNotFound(ThreadError):
    pass


class ThreadExists(ThreadError):
    pass


class MemberNotFound(ThreadError):
    pass


class InvalidThread(ThreadError):
    pass


class OutsideUserDomains(ThreadError):
    """The person is not in the hospital's user domains, so cannot be a member (IV.2)."""


class NotInDirectory(ThreadError):
    """With a directory configured, the person is not in it, so cannot be a member (IV.2)."""


class ConcurrentChange(ThreadError):
    """Someone else changed the same thread at the same moment; trying again is safe."""


@dataclass(frozen=True)
class MemberInfo:
    """One member of a thread; history is readable from ``since`` (threads config)."""

    jid: str
    affiliation: Affiliation
    since: datetime


@dataclass(frozen=True)
class ThreadInfo:
    """A thread as the gateway and the CLI see it."""

    id: int
    name: str
    title: str
    kind: Kind
    subject: str
    created_at: datetime
    members: tuple[MemberInfo, ...]
    # Flagged for the patient record (I.6): then ``members`` includes the records member.
    documented: bool = False

    def member(self, jid: str) -> MemberInfo | None:
        """The membership of bare ``jid``, or None for a non-member (IV.2)."""
        for item in self.members:
            if item.jid == jid:
                return item
        return None

    @cached_property
    def member_jids(self) -> frozenset[str]:
        """Computed once per book entry (the relay asks for every message)."""
        return frozenset(m.jid for m in self.members)


def check_name(name: str) -> str:
    """A valid thread name (lower case), or InvalidThread naming the rule."""
    value = name.strip().lower()
    if not _NAME.match(value):
        raise InvalidThread(
            f"invalid thread name {name!r}: use 1-64 of a-z 0-9 . _ - starting with a letter/digit"
        )
    return value


def check_jid(jid: str) -> str:
    """A member's normalised bare JID (:func:`xmpp_clinic.jids.bare_jid`), or InvalidThread.

    Members are people, not resources: a full JID is refused rather than cut short.
    """
    if "/" in jid:
        raise InvalidThread(f"invalid member JID {jid!r}: expected a bare JID like name@domain")
    try:
        return bare_jid(jid)
    except InvalidJid as exc:
        raise InvalidThread(f"invalid member JID: {exc}") from None


def check_user_domain(jid: str, user_domains: frozenset[str]) -> str:
    """``jid`` if its domain is one of ``user_domains``, else OutsideUserDomains (IV.2).

    Fails closed: with no user domains configured nobody can become a member.
    """
    if not user_domains:
        raise OutsideUserDomains(
            f"cannot add {jid}: no hospital user domains are configured "
            "(set xmpp.user_domains in the gateway config)"
        )
    if domain_of(jid) not in user_domains:
        raise OutsideUserDomains(
            f"cannot add {jid}: only people of {', '.join(sorted(user_domains))} "
            "can be members (xmpp.user_domains)"
        )
    return jid


def check_title(title: str, fallback: str) -> str:
    """A title clients can show on one line: ``fallback`` (the name) when blank.

    At most :data:`~xmpp_clinic.limits.MAX_TITLE_CHARS` characters and no line breaks or
    other control characters, which would break every list that shows it.
    """
    value = title.strip()
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise InvalidThread("a thread title must be one line without control characters")
    if len(value) > MAX_TITLE_CHARS:
        raise InvalidThread(f"a thread title has at most {MAX_TITLE_CHARS} characters")
    return value or fallback


def check_affiliation(affiliation: str) -> Affiliation:
    for known in AFFILIATIONS:
        if affiliation == known:
            return known
    raise InvalidThread(
        f"invalid affiliation {affiliation!r}: use one of {', '.join(AFFILIATIONS)}"
    )


def direct_name(first: str, second: str) -> str:
    """The stable name of the direct thread between two people (same for both orders)."""
    pair = "\n".join(sorted((check_jid(first), check_jid(second))))
    return "direct-" + hashlib.sha256(pair.encode()).hexdigest()[:16]
