"""End-to-end encryption is required in care threads (II.1).

When encryption is required, every direct child of ``<message>`` must be on an
ALLOWLIST of elements that carry no readable content: OMEMO ``<encrypted>`` (both
versions), chat states, chat markers, receipts, processing hints (XEP-0334), origin-id and
stanza-id, EME (XEP-0380), delay, message-correction ids (XEP-0308), the ``<thread>`` id,
and an empty muc#user ``<x/>``. These are what slixmpp-omemo,
Conversations, Gajim and Dino put on an OMEMO groupchat message. Anything else -- a
forwarded message, a SIMS reference, a data form, an out-of-band link, a ``<body>`` in an
unknown namespace, any element we do not know -- is refused as ``plaintext-refused``: a
new extension must be added here deliberately, it is never let through by default.

Allowlisted markers must be empty, and may carry only the attributes their XEP defines,
with id-shaped values: text, child elements or free attributes would be a place to carry
content. Inside ``<encrypted>`` only the OMEMO structure of that version is allowed, with
base64 text. A ``<body>`` is allowed only next to ``<encrypted>`` and only when it is an
OMEMO fallback text (see :func:`is_fallback_text`). Ids themselves can still hold a few
id-shaped characters; that residue is inherent to ids.

Messages without content (chat states, markers, receipts) pass; OMEMO messages without
payload (key transport, heartbeats) pass here and meet the device checks like any other.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from xmpp_clinic import namespaces as ns
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS, MalformedOmemo, OmemoHeader
from xmpp_clinic.omemo import NAMESPACES as OMEMO_NAMESPACES
from xmpp_clinic.policy.verdict import ReasonCode, Verdict

STANZA_NAMESPACES = (ns.CLIENT, ns.COMPONENT, ns.SERVER, "")

OTHER_ENCRYPTION = frozenset({(ns.OPENPGP, "openpgp"), (ns.LEGACY_OPENPGP, "x")})

# (namespace, local name) of direct <message> children that may appear in a care thread,
# provided they are empty (no text, no child elements): they carry ids and flags only.
CONTENT_FREE = frozenset(
    {
        *((ns.CHAT_STATES, name) for name in ("active", "composing", "paused", "inactive", "gone")),
        *(
            (ns.CHAT_MARKERS, name)
            for name in ("markable", "received", "displayed", "acknowledged")
        ),
        (ns.RECEIPTS, "request"),
        (ns.RECEIPTS, "received"),
        *((ns.HINTS, name) for name in ("store", "no-store", "no-copy", "no-permanent-store")),
        (ns.SID, "origin-id"),
        (ns.SID, "stanza-id"),
        (ns.EME, "encryption"),
        (ns.DELAY, "delay"),
        (ns.CORRECTION, "replace"),  # Conversations, Gajim: corrected OMEMO
        (ns.MUC_USER, "x"),
    }
)
MAX_THREAD_ID = 128

XML_LANG = f"{{{ns.XML}}}lang"
# Attributes each allowlisted element may carry (everything else is refused).
ATTRIBUTES: dict[tuple[str, str], frozenset[str]] = {
    (ns.CHAT_MARKERS, "received"): frozenset({"id"}),
    (ns.CHAT_MARKERS, "displayed"): frozenset({"id"}),
    (ns.CHAT_MARKERS, "acknowledged"): frozenset({"id"}),
    (ns.RECEIPTS, "received"): frozenset({"id"}),
    (ns.SID, "origin-id"): frozenset({"id"}),
    (ns.SID, "stanza-id"): frozenset({"id", "by"}),
    (ns.EME, "encryption"): frozenset({"namespace", "name"}),
    (ns.DELAY, "delay"): frozenset({"stamp", "from"}),
    (ns.CORRECTION, "replace"): frozenset({"id"}),
}
# Id-shaped: what ids, JIDs, timestamps, namespaces and language tags look like; no spaces.
_ID_SHAPED = re.compile(r"[A-Za-z0-9._:@+/=#\-]{1,128}")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\s]*")

# An OMEMO fallback body: short, names OMEMO, and made only of the words the known
# clients' fallback texts use. slixmpp-omemo: "This message is OMEMO encrypted.";
# Conversations and Gajim: "I sent you an OMEMO encrypted message but your client doesn't
# seem to support that. Find more information on https://conversations.im/omemo"; Dino:
# "[This message is OMEMO encrypted]". With no digits and no free words, a fallback
# cannot carry a name, a bed or a dose.
MAX_FALLBACK = 200
FALLBACK_WORDS = frozenset(
    {
        *("a", "an", "and", "be", "but", "can't", "cannot", "client", "could", "decrypt"),
        *("decrypted", "does", "doesn't", "encrypted", "encryption", "find", "i"),
        *("information", "is", "it", "message", "more", "not", "omemo", "on", "please"),
        *("seem", "seems", "sent", "support", "supports", "that", "this", "to", "use"),
        *("which", "with", "you", "your"),
    }
)
FALLBACK_URLS = frozenset(
    {"https://conversations.im/omemo", "https://xmpp.org/extensions/xep-0384.html"}
)
_FALLBACK_TOKEN = re.compile(r"https?://\S+?(?=[.,;:!?)\]]*(?:\s|$))|[a-z']+|[.,;:!?()\[\]-]|\S")


def _split(tag: object) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return "", tag


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def _empty(element: ET.Element) -> bool:
    """No text and no child elements (attributes only)."""
    return _blank(element.text) and len(element) == 0


def _attributes_ok(element: ET.Element, allowed: frozenset[str]) -> bool:
    """Only ``allowed`` attributes, each with an id-shaped value (no free text)."""
    return all(
        name in allowed and _ID_SHAPED.fullmatch(value) is not None
        for name, value in element.attrib.items()
    )


def is_fallback_text(text: str) -> bool:
    """Whether ``text`` is an OMEMO fallback body, not a message in clear (II.1)."""
    normal = " ".join(text.replace("\u2019", "'").split()).casefold()
    if not normal or len(normal) > MAX_FALLBACK or "omemo" not in normal:
        return False
    for token in _FALLBACK_TOKEN.findall(normal):
        if token.startswith(("http://", "https://")):
            if token not in FALLBACK_URLS:
                return False
        elif token[0].isalpha() or token[0] == "'":
            if token not in FALLBACK_WORDS:
                return False
        elif token not in ".,;:!?()[]-":
            return False
    return True


def _describe(namespace: str, local: str) -> str:
    """Names an element by namespace and local name (never its content)."""
    shown = namespace if len(namespace) <= 80 else namespace[:77] + "..."
    return f"<{local[:40]}> in namespace '{shown or '(none)'}'"


# What an OMEMO <encrypted> element may hold: element path -> allowed children, and the
# elements whose text is base64 (everything else must hold no text).
_OMEMO_CHILDREN = {
    LEGACY_NS: {
        "encrypted": frozenset({"header", "payload"}),
        "header": frozenset({"key", "iv"}),
    },
    OMEMO2_NS: {
        "encrypted": frozenset({"header", "payload"}),
        "header": frozenset({"keys"}),
        "keys": frozenset({"key"}),
    },
}
_OMEMO_TEXT = frozenset({"key", "iv", "payload"})
_OMEMO_ATTRIBUTES = {
    "header": frozenset({"sid"}),
    "key": frozenset({"rid", "prekey", "kex"}),
    "keys": frozenset({"jid"}),
}


def _stray_in_encrypted(encrypted: ET.Element, namespace: str) -> str | None:
    """An element or text inside ``<encrypted>`` that OMEMO does not define, described."""
    pending = [encrypted]
    while pending:
        element = pending.pop()
        _, local = _split(element.tag)
        if local in _OMEMO_TEXT:
            if _BASE64.fullmatch(element.text or "") is None:
                return f"text that is not base64 inside OMEMO <{local}>"
        elif not _blank(element.text):
            return f"text inside OMEMO <{local}>"
        if not _attributes_ok(element, _OMEMO_ATTRIBUTES.get(local, frozenset())):
            return f"an attribute OMEMO does not define on <{local}>"
        for child in element:
            child_ns, child_local = _split(child.tag)
            allowed = _OMEMO_CHILDREN.get(namespace, {}).get(local, frozenset())
            if child_ns != namespace or child_local not in allowed or not _blank(child.tail):
                return _describe(child_ns, child_local) + " inside OMEMO <encrypted>"
            pending.append(child)
    return None


def _stanza_child_allowed(child: ET.Element, local: str, *, encrypted: bool) -> bool:
    """A fallback ``<body>`` next to OMEMO, or a ``<thread>`` id (a subject is never a
    member's to send; the administrators set it)."""
    if len(child) != 0:
        return False
    if local == "body":
        return (
            encrypted
            and _attributes_ok(child, frozenset({XML_LANG}))
            and is_fallback_text(child.text or "")
        )
    if local == "thread":
        text = (child.text or "").strip()
        return (
            _attributes_ok(child, frozenset({"parent"}))
            and len(text) <= MAX_THREAD_ID
            and (not text or _ID_SHAPED.fullmatch(text) is not None)
        )
    return False


def find_plaintext(message: ET.Element, *, encrypted: bool) -> str | None:
    """The first child of ``message`` that may carry readable content outside OMEMO, as
    a description of the element (namespace, local name); None if there is none (II.1).

    ``encrypted`` says whether the message carries a readable OMEMO header; only then is
    a fallback ``<body>`` allowed.
    """
    if not _blank(message.text):
        return "text directly inside <message>"
    for child in message:
        if not _blank(child.tail):
            return "text directly inside <message>"
        namespace, local = _split(child.tag)
        if namespace in STANZA_NAMESPACES:
            if _stanza_child_allowed(child, local, encrypted=encrypted):
                continue
            return _describe(ns.CLIENT, local)  # as the client wrote it
        if namespace in OMEMO_NAMESPACES and local == "encrypted":
            stray = _stray_in_encrypted(child, namespace)
            if stray is None:
                continue  # read by parse_header; its payload is ciphertext
            return stray
        allowed = ATTRIBUTES.get((namespace, local), frozenset())
        if (namespace, local) in CONTENT_FREE and _empty(child) and _attributes_ok(child, allowed):
            continue
        return _describe(namespace, local)
    return None


def _other_encryption(message: ET.Element) -> bool:
    return any(_split(child.tag) in OTHER_ENCRYPTION for child in message)


def check_e2e(
    message: ET.Element, header: OmemoHeader | MalformedOmemo | None, *, required: bool = True
) -> Verdict:
    """Refuse plaintext, unknown elements and unreadable OMEMO headers (II.1)."""
    if isinstance(header, MalformedOmemo):
        return Verdict.reject(
            ReasonCode.MALFORMED_OMEMO,
            f"The OMEMO header could not be read ({header.code}: {header.text}).",
        )
    if not required:
        return Verdict.accept()
    if header is None and _other_encryption(message):
        return Verdict.reject(
            ReasonCode.UNSUPPORTED_ENCRYPTION,
            "Care threads accept OMEMO encryption only; enable OMEMO for this chat.",
        )
    offending = find_plaintext(message, encrypted=header is not None)
    if offending is not None:
        return Verdict.reject(
            ReasonCode.PLAINTEXT_REFUSED,
            f"Unencrypted messages are not allowed in care threads ({offending}); "
            "enable OMEMO and resend.",
        )
    return Verdict.accept()
