"""End-to-end encryption is required in care threads (II.1).

When encryption is required, every direct child of ``<message>`` must be on the
allowlist :data:`CONTENT_FREE` of elements that carry no readable content: chat states,
chat markers, receipts, processing hints (XEP-0334), origin-id and stanza-id, EME
(XEP-0380), delay, message-correction ids (XEP-0308) and an empty muc#user ``<x/>``;
beside them the OMEMO ``<encrypted>`` element (both versions, only the structure OMEMO
defines), a ``<thread>`` id, and -- next to OMEMO only -- ``<body>`` and XEP-0428
``<fallback>``, which the gateway replaces with its own (:mod:`.fallback`). These are
what slixmpp-omemo, Conversations, Gajim, Dino, Monal, Profanity and Kaidan put on an
OMEMO groupchat message. Anything else -- a forwarded message, a SIMS reference, a data
form, an out-of-band link, a ``<body>`` in an unknown namespace, a ``<body>`` with no
OMEMO beside it, any element we do not know -- is refused as ``plaintext-refused``: a new
extension is added here deliberately, never let through by default.

Allowlisted elements must be empty and may carry only the attributes listed for them,
each held to its shape (:mod:`.values`: ids, timestamps, addresses, OMEMO namespaces);
the message's own ``id`` and ``xml:lang`` too. A value of the wrong shape is refused as
``invalid-value``, an attribute nobody defined as ``plaintext-refused``; the error names
the element and attribute, never the value.

To let one more content-free element through (say a "part x of y" marker), add one line
to :data:`CONTENT_FREE`: its (namespace, local name) and the shape of each attribute it
may carry, e.g. ``(ns.CLINIC_PARTS, "part"): {"set": ID, "n": OFFSET, "of": OFFSET}``.
It must be empty; nothing else changes.

Messages without content (chat states, markers, receipts) pass; OMEMO messages without
payload (key transport, heartbeats) pass here and meet the device checks like any other.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from xmpp_clinic import namespaces as ns
from xmpp_clinic.omemo import BY_URI, LEGACY_NS, OMEMO2_NS, MalformedOmemo, OmemoHeader
from xmpp_clinic.policy.fallback import STANZA_NAMESPACES, XML_LANG, write_fallback
from xmpp_clinic.policy.values import (
    ADDRESS,
    EME_NAME,
    ID,
    LABEL,
    LANGUAGE_TAG,
    OFFSET,
    OMEMO_NAMESPACE,
    TIMESTAMP,
    ValueShape,
)
from xmpp_clinic.policy.verdict import Action, ReasonCode, Verdict

OTHER_ENCRYPTION = frozenset({(ns.OPENPGP, "openpgp"), (ns.LEGACY_OPENPGP, "x")})

Attributes = Mapping[str, ValueShape]
_NONE: Attributes = MappingProxyType({})
_ID_ONLY: Attributes = MappingProxyType({"id": ID})

# (namespace, local name) of direct <message> children that may appear in a care thread,
# provided they are empty (no text, no child elements), with the attributes each may carry.
CONTENT_FREE: Mapping[tuple[str, str], Attributes] = MappingProxyType(
    {
        **{
            (ns.CHAT_STATES, name): _NONE
            for name in ("active", "composing", "paused", "inactive", "gone")
        },
        (ns.CHAT_MARKERS, "markable"): _NONE,
        **{(ns.CHAT_MARKERS, name): _ID_ONLY for name in ("received", "displayed", "acknowledged")},
        (ns.RECEIPTS, "request"): _NONE,
        (ns.RECEIPTS, "received"): _ID_ONLY,
        **{
            (ns.HINTS, name): _NONE
            for name in ("store", "no-store", "no-copy", "no-permanent-store")
        },
        (ns.SID, "origin-id"): _ID_ONLY,
        (ns.SID, "stanza-id"): MappingProxyType({"id": ID, "by": ADDRESS}),
        # Beside OMEMO the name may be any label: it is replaced (EME_BESIDE_OMEMO).
        (ns.EME, "encryption"): MappingProxyType({"namespace": OMEMO_NAMESPACE, "name": EME_NAME}),
        (ns.DELAY, "delay"): MappingProxyType({"stamp": TIMESTAMP, "from": ADDRESS}),
        (ns.CORRECTION, "replace"): _ID_ONLY,  # Conversations, Gajim: corrected OMEMO
        (ns.MUC_USER, "x"): _NONE,
        (ns.CLINIC_PARTS, "part"): MappingProxyType({"set": ID, "n": OFFSET, "of": OFFSET}),
    }
)
# The message's own attributes that are checked (to, from and type are the server's and
# the relay's; the relay writes its own <message> and keeps only the id).
MESSAGE_ATTRIBUTES: Attributes = MappingProxyType({"id": ID, XML_LANG: LANGUAGE_TAG})
THREAD_ATTRIBUTES: Attributes = MappingProxyType({"parent": ID})
# XEP-0428 beside OMEMO: <fallback for=OMEMO-namespace> with empty <body start end/>.
MARKER_ATTRIBUTES: Attributes = MappingProxyType({"for": OMEMO_NAMESPACE})
MARKER_BODY_ATTRIBUTES: Attributes = MappingProxyType({"start": OFFSET, "end": OFFSET})
# XEP-0380 beside OMEMO: the gateway writes the version's own name (fallback.py).
EME_BESIDE_OMEMO: Attributes = MappingProxyType({"namespace": OMEMO_NAMESPACE, "name": LABEL})


@dataclass(frozen=True)
class Finding:
    """Why a message may not pass: the reason code and what was found (never content)."""

    reason: ReasonCode
    what: str


def _split(tag: object) -> tuple[str, str]:
    if not isinstance(tag, str):
        return "", ""
    if tag.startswith("{"):
        namespace, local = tag[1:].split("}", 1)
        return namespace, local
    return "", tag


def _blank(text: str | None) -> bool:
    return not (text or "").strip()


def _describe(namespace: str, local: str) -> str:
    """Names an element by namespace and local name (never its content)."""
    shown = namespace if len(namespace) <= 80 else namespace[:77] + "..."
    return f"<{local[:40]}> in namespace '{shown or '(none)'}'"


def _attribute_name(name: str) -> str:
    return "xml:lang" if name == XML_LANG else name[:40]


def check_attributes(
    element: ET.Element, allowed: Attributes, what: str, *, others: bool = False
) -> Finding | None:
    """Only ``allowed`` attributes (any other too when ``others``), each of its shape;
    ``what`` names the element."""
    for name, value in element.attrib.items():
        shape = allowed.get(name)
        if shape is None:
            if others:
                continue
            return Finding(
                ReasonCode.PLAINTEXT_REFUSED,
                f"an attribute '{_attribute_name(name)}' that {what} does not define",
            )
        if not shape.fits(value):
            return Finding(
                ReasonCode.INVALID_VALUE,
                f"the '{_attribute_name(name)}' of {what} is not {shape.name} ({shape.rule})",
            )
    return None


# What an OMEMO <encrypted> element may hold: allowed children and attributes per element;
# key, iv and payload hold base64, read strictly by omemo.parse_header.
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
    LEGACY_NS: {"header": frozenset({"sid"}), "key": frozenset({"rid", "prekey"})},
    OMEMO2_NS: {
        "header": frozenset({"sid"}),
        "keys": frozenset({"jid"}),
        "key": frozenset({"rid", "kex"}),
    },
}


def _stray_in_encrypted(encrypted: ET.Element, namespace: str) -> str | None:
    """An element, attribute or text inside ``<encrypted>`` that OMEMO does not define."""
    pending = [encrypted]
    while pending:
        element = pending.pop()
        _, local = _split(element.tag)
        if local not in _OMEMO_TEXT and not _blank(element.text):
            return f"text inside OMEMO <{local}>"
        allowed = _OMEMO_ATTRIBUTES[namespace].get(local, frozenset())
        if any(name not in allowed for name in element.attrib):
            return f"an attribute OMEMO does not define on <{local}>"
        for child in element:
            child_ns, child_local = _split(child.tag)
            children = _OMEMO_CHILDREN[namespace].get(local, frozenset())
            if child_ns != namespace or child_local not in children or not _blank(child.tail):
                return _describe(child_ns, child_local) + " inside OMEMO <encrypted>"
            pending.append(child)
    return None


def _plaintext(what: str) -> Finding:
    return Finding(ReasonCode.PLAINTEXT_REFUSED, what)


def _check_thread(child: ET.Element) -> Finding | None:
    """A ``<thread>`` is an id (XEP-0201), its ``parent`` too."""
    if len(child) != 0:
        return _plaintext(_describe(ns.CLIENT, "thread") + " with child elements")
    text = (child.text or "").strip()
    if text and not ID.fits(text):
        return Finding(ReasonCode.INVALID_VALUE, f"the <thread> is not {ID.name} ({ID.rule})")
    return check_attributes(child, THREAD_ATTRIBUTES, "<thread>")


def _check_marker(child: ET.Element) -> Finding | None:
    """XEP-0428 ``<fallback for>`` with empty ``<body start end/>`` children only."""
    what = "<fallback>"
    if not _blank(child.text):
        return _plaintext(f"text inside {what}")
    for body in child:
        if body.tag != f"{{{ns.FALLBACK}}}body" or len(body) or not _blank(body.text):
            return _plaintext(_describe(*_split(body.tag)) + f" inside {what}")
        if not _blank(body.tail):
            return _plaintext(f"text inside {what}")
        found = check_attributes(body, MARKER_BODY_ATTRIBUTES, f"<body> in {what}")
        if found is not None:
            return found
    return check_attributes(child, MARKER_ATTRIBUTES, what)


def _check_child(child: ET.Element, *, encrypted: bool) -> Finding | None:
    namespace, local = _split(child.tag)
    if namespace in STANZA_NAMESPACES:
        if local == "body" and encrypted:
            return None  # replaced by the gateway's own fallback text
        if local == "thread":
            return _check_thread(child)
        return _plaintext(_describe(ns.CLIENT, local))  # a subject, a stray body, ...
    if local == "encrypted" and namespace in BY_URI:
        stray = _stray_in_encrypted(child, namespace)
        return None if stray is None else _plaintext(stray)
    if (namespace, local) == (ns.FALLBACK, "fallback") and encrypted:
        return _check_marker(child)
    allowed = CONTENT_FREE.get((namespace, local))
    if (namespace, local) == (ns.EME, "encryption") and encrypted:
        allowed = EME_BESIDE_OMEMO
    if allowed is None or len(child) != 0 or not _blank(child.text):
        return _plaintext(_describe(namespace, local))
    return check_attributes(child, allowed, _describe(namespace, local))


def inspect(message: ET.Element, *, encrypted: bool) -> Finding | None:
    """The first thing in ``message`` that may carry readable content outside OMEMO or
    does not have its shape; None if there is none (II.1).

    ``encrypted`` says whether the message carries a readable OMEMO element; only then
    are ``<body>`` and ``<fallback>`` allowed (and replaced).
    """
    found = check_attributes(message, MESSAGE_ATTRIBUTES, "the message", others=True)
    if found is not None:
        return found
    if not _blank(message.text):
        return _plaintext("text directly inside <message>")
    for child in message:
        if not _blank(child.tail):
            return _plaintext("text directly inside <message>")
        found = _check_child(child, encrypted=encrypted)
        if found is not None:
            return found
    return None


def _other_encryption(message: ET.Element) -> bool:
    return any(_split(child.tag) in OTHER_ENCRYPTION for child in message)


def _refusal(finding: Finding, *, encrypted: bool) -> Verdict:
    if finding.reason is ReasonCode.INVALID_VALUE:
        text = f"This message was not delivered: {finding.what}."
    elif encrypted:
        text = (
            f"This message carries content outside OMEMO ({finding.what}), which care "
            "threads do not allow; send it inside the encrypted message."
        )
    else:
        text = (
            f"Unencrypted messages are not allowed in care threads ({finding.what}); "
            "enable OMEMO and resend."
        )
    return Verdict.reject(finding.reason, text)


def check_e2e(
    message: ET.Element, header: OmemoHeader | MalformedOmemo | None, *, required: bool = True
) -> Verdict:
    """Refuse plaintext, values out of shape and unreadable OMEMO; beside valid OMEMO,
    replace the fallback with the gateway's own (a MODIFY verdict) (II.1)."""
    if isinstance(header, MalformedOmemo):
        return Verdict.reject(
            ReasonCode.MALFORMED_OMEMO,
            f"The OMEMO element could not be read ({header.code}: {header.text}).",
        )
    if not required:
        return Verdict.accept()
    if header is None and _other_encryption(message):
        return Verdict.reject(
            ReasonCode.UNSUPPORTED_ENCRYPTION,
            "Care threads accept OMEMO encryption only; enable OMEMO for this chat.",
        )
    encrypted = header is not None
    finding = inspect(message, encrypted=encrypted)
    if finding is not None:
        return _refusal(finding, encrypted=encrypted)
    rewritten = None if header is None else write_fallback(message, BY_URI[header.namespace])
    if rewritten is None:
        return Verdict.accept()
    text = "The fallback text beside OMEMO was replaced with the gateway's own."
    return Verdict(Action.MODIFY, ReasonCode.FALLBACK_REPLACED, text, rewritten)
