"""The shapes of the values a care-thread message may carry outside OMEMO (II.1, I.12).

Ids, flags, timestamps and language tags are the only text the allowlist
(:mod:`xmpp_clinic.policy.e2e`) lets through beside the ciphertext, so each is held to
its real shape: a bounded token alphabet, no spaces. ``id="Patient Hans Mueller, K+ 6.1,
bed 12"`` does not fit any of them. What remains is inherent to ids -- a few id-shaped
characters such as ``Hans_Mueller`` -- and is the residue the requirement accepts.

Real clients' ids all fit :data:`ID`: UUIDs (Gajim, Dino, Monal, Kaidan, Converse.js),
slixmpp's 32 hex digits, Conversations' base64url ids, Profanity's letters-and-hex ids,
Smack's ``Z3Hr5-42``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from xmpp_clinic.omemo import NAMESPACES as OMEMO_NAMESPACES


@dataclass(frozen=True)
class ValueShape:
    """A kind of value: what it is called, what it must look like, and the pattern."""

    name: str  # "an id", for the sender's error text
    rule: str  # "1 to 128 letters, digits or - _ . : + / =", idem
    pattern: re.Pattern[str]

    def fits(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None


MAX_ID = 128
ID = ValueShape(
    "an id",
    f"1 to {MAX_ID} letters, digits or - _ . : + / =",
    re.compile(rf"[A-Za-z0-9_.:+/=-]{{1,{MAX_ID}}}"),
)

# RFC 5646 language tags: a 2-3 letter language (with extended subtags), then script,
# region, variants, extensions and private use; or a private-use tag alone. At most 35
# characters, the length RFC 5646 4.4.1 asks every implementation to handle.
MAX_LANGUAGE_TAG = 35
_LANGUAGE = (
    r"[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}"
    r"(?:-[A-Za-z]{4})?"
    r"(?:-(?:[A-Za-z]{2}|[0-9]{3}))?"
    r"(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*"
    r"(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*"
    r"(?:-[Xx](?:-[A-Za-z0-9]{1,8})+)?"
)
LANGUAGE_TAG = ValueShape(
    "a language tag",
    f"a BCP 47 language tag such as 'de' or 'en-GB', at most {MAX_LANGUAGE_TAG} characters",
    re.compile(
        rf"(?=[A-Za-z0-9-]{{2,{MAX_LANGUAGE_TAG}}}\Z)(?:{_LANGUAGE}|[Xx](?:-[A-Za-z0-9]{{1,8}})+)"
    ),
)

TIMESTAMP = ValueShape(
    "a timestamp",
    "an XEP-0082 date and time such as 2025-03-01T08:00:00Z",
    re.compile(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?"
        r"(?:Z|[+-][0-9]{2}:[0-9]{2})"
    ),
)

# An address as a stanza-id's "by" or a delay's "from" carries one (the relay drops both
# elements; their values are still held to a shape): no spaces or XML specials, a host
# name as the domain.
MAX_ADDRESS = 1023
ADDRESS = ValueShape(
    "an address",
    "a JID such as ward@clinic.hospital.example",
    re.compile(
        rf"(?=.{{1,{MAX_ADDRESS}}}\Z)(?:[^\s\"&'/:<>@]+@)?[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
        r"(?:/[^\s\"&'<>]+)?"
    ),
)

OMEMO_NAMESPACE = ValueShape(
    "an OMEMO namespace",
    " or ".join(OMEMO_NAMESPACES),
    re.compile("|".join(re.escape(uri) for uri in OMEMO_NAMESPACES)),
)

# XEP-0380 <encryption name>: without OMEMO beside it, one of the names XEP-0380 and the
# clients give OMEMO; beside OMEMO, any short label, which the gateway replaces.
EME_NAME = ValueShape(
    "an OMEMO name",
    "OMEMO, OMEMO 1, OMEMO 2 or Legacy OMEMO",
    re.compile("OMEMO|OMEMO 1|OMEMO 2|Legacy OMEMO"),
)
LABEL = ValueShape("a name", "at most 64 characters", re.compile(r"[^\x00-\x1f<>&]{1,64}"))

# Character offsets (XEP-0428 <body start end>).
OFFSET = ValueShape("an offset", "1 to 10 digits", re.compile(r"[0-9]{1,10}"))
