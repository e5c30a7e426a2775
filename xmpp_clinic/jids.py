"""Bare JIDs, normalised once (RFC 7622), for every place that compares people.

Pure: no slixmpp, so the domain rooms (threads, registry, policy, directory) and the CLI
share it. The localpart is enforced with the PRECIS UsernameCaseMapped profile and the
domain is lower-cased (IDNA A-labels stay as they are), which is how the servers compare
them; a resource is dropped. Anything over RFC 7622's lengths, or with characters the
profile disallows, is an :class:`InvalidJid` naming the problem.
"""

from __future__ import annotations

import functools
import re

import precis_i18n

from xmpp_clinic.limits import MAX_JID_PART_BYTES

_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
# A DNS-style domain: labels of letters, digits and hyphens, or an IP literal (RFC 7622
# allows more, but a hospital's user domains are host names).
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


class InvalidJid(ValueError):
    """Not a usable JID; ``str()`` says what is wrong with it."""


def _part_length(part: str, what: str) -> None:
    if len(part.encode("utf-8")) > MAX_JID_PART_BYTES:
        raise InvalidJid(f"the {what} is longer than {MAX_JID_PART_BYTES} bytes (RFC 7622)")


def check_domain(raw: str) -> str:
    """A host name such as ``hospital.example``, lower-cased (RFC 7622 3.2)."""
    domain = raw.strip().rstrip(".").lower()
    if not domain:
        raise InvalidJid("the domain is empty")
    _part_length(domain, "domain")
    labels = domain.split(".")
    if not all(_LABEL.match(label) for label in labels):
        raise InvalidJid(f"{raw!r} is not a valid domain name (letters, digits, '-' and '.')")
    return domain


@functools.lru_cache(maxsize=4096)
def bare_jid(raw: str) -> str:
    """The normalised bare JID of ``raw`` (``local@domain``; any resource dropped).

    Raises :class:`InvalidJid` for a JID without localpart, or one that is malformed.
    """
    if not isinstance(raw, str):
        raise InvalidJid("a JID must be text")
    bare = raw.strip().split("/", 1)[0]
    local, at, domain = bare.rpartition("@")
    if not at or not local:
        raise InvalidJid(f"{raw!r} is not a JID of the form name@domain")
    if "@" in local:
        raise InvalidJid(f"{raw!r} has more than one '@'")
    _part_length(local, "localpart")
    try:
        local = _USERNAME.enforce(local)
    except UnicodeError:
        raise InvalidJid(f"{raw!r} has characters a JID's localpart may not contain") from None
    if any(c in local for c in "\"&'/:<>@"):
        raise InvalidJid(f"{raw!r} has characters a JID's localpart may not contain")
    return f"{local}@{check_domain(domain)}"


def is_bare_jid(raw: str) -> bool:
    """True when :func:`bare_jid` accepts ``raw`` and it has no resource."""
    try:
        return "/" not in raw and bare_jid(raw) is not None
    except InvalidJid:
        return False


def domain_of(jid: str) -> str:
    """The domain of a (bare or full) JID, lower-cased; no validation (hot path)."""
    return jid.split("/", 1)[0].rpartition("@")[2].lower()


def fast_bare(jid: str) -> str:
    """The bare JID of an address the server already normalised (the stanza's ``from``).

    Only for JIDs that came from the server, on the message hot path; everything an
    operator or a form gives goes through :func:`bare_jid`.
    """
    return jid.split("/", 1)[0].lower()
