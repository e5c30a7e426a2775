"""A grammar of hostile thread messages around a valid OMEMO element (hypothesis).

A generated :class:`Shape` is rendered into one ``<message type='groupchat'>`` to the
thread: Mallory's valid OMEMO element, changed in one place or not at all, with extra
elements before and after it and extra attributes on the message. Every text and
attribute value the grammar writes is *hostile*: it holds the marker and a space (or a
comma), so it is never a valid id, flag, language tag, base64 text or fallback body. A
correct gateway therefore refuses the message or drops the hostile part: the marker must
never arrive anywhere.

Two grammars share this vocabulary: :func:`structure` only writes where the gateway's
allowlist already decides (elements, attributes, texts around and inside OMEMO), and
:func:`slots` writes into the places issue 8 found open (the message id, the base64
texts of ``<payload>``, ``<key>`` and ``<iv>``, the ``prekey``/``kex`` flags).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from hypothesis import strategies as st

MARK = "{marker}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# Elements clients put on messages, elements nobody should, and one without namespace.
ELEMENTS = (
    ("http://jabber.org/protocol/chatstates", "active"),
    ("urn:xmpp:chat-markers:0", "markable"),
    ("urn:xmpp:chat-markers:0", "displayed"),
    ("urn:xmpp:receipts", "request"),
    ("urn:xmpp:receipts", "received"),
    ("urn:xmpp:hints", "store"),
    ("urn:xmpp:sid:0", "origin-id"),
    ("urn:xmpp:sid:0", "stanza-id"),
    ("urn:xmpp:eme:0", "encryption"),
    ("urn:xmpp:message-correct:0", "replace"),
    ("urn:xmpp:delay", "delay"),
    ("http://jabber.org/protocol/muc#user", "x"),
    ("jabber:client", "body"),
    ("jabber:client", "thread"),
    ("jabber:client", "subject"),
    ("http://jabber.org/protocol/xhtml-im", "html"),
    ("jabber:x:oob", "x"),
    ("urn:xmpp:reference:0", "reference"),
    ("urn:xmpp:forward:0", "forwarded"),
    ("jabber:x:data", "x"),
    ("urn:xmpp:omemo:2", "encrypted"),
    ("eu.siacs.conversations.axolotl", "payload"),
    ("urn:example:fuzz", "anything"),
    ("", "naked"),
)
ATTRIBUTES = ("id", "name", "namespace", "stamp", "by", "jid", "type", "parent", "href", XML_LANG)
OMEMO_ATTRIBUTES = ("sid", "rid", "jid", "kex", "prekey", "foo")
_SAFE = st.characters(
    min_codepoint=0x20, max_codepoint=0x1FAFF, exclude_categories=("Cs", "Cc"),
    exclude_characters="\ufffe\uffff",
)  # fmt: skip
_WORDS = ("Hans Mueller", "K+ 6.1, bed 12", "bed 12", "please review", "\U0001f637 fever")

#: Text that holds the marker and can never pass as an id, flag, tag or base64.
hostile_text = st.one_of(
    st.sampled_from(_WORDS).map(lambda words: f"{words} {MARK}"),
    # A letter first: stripped of outer whitespace, it still has a separator inside.
    st.tuples(st.text(_SAFE, max_size=8), st.sampled_from((" ", ", ", "\n"))).map(
        lambda pair: f"x{pair[0]}{pair[1]}{MARK}"
    ),
)


@dataclass(frozen=True)
class Node:
    """One generated element."""

    ns: str
    local: str
    attrs: tuple[tuple[str, str], ...] = ()
    text: str | None = None
    children: tuple[Node, ...] = ()

    def build(self) -> ET.Element:
        element = ET.Element(f"{{{self.ns}}}{self.local}" if self.ns else self.local)
        for name, value in self.attrs:
            element.set(name, value)
        element.text = self.text
        element.extend(child.build() for child in self.children)
        return element


def _node(children: st.SearchStrategy[tuple[Node, ...]]) -> st.SearchStrategy[Node]:
    attrs = st.lists(st.tuples(st.sampled_from(ATTRIBUTES), hostile_text), max_size=2)
    return st.builds(
        lambda name, a, text, kids: Node(name[0], name[1], tuple(dict(a).items()), text, kids),
        st.sampled_from(ELEMENTS), attrs, st.none() | hostile_text, children,
    )  # fmt: skip


nodes: st.SearchStrategy[Node] = st.recursive(
    _node(st.just(())), lambda inner: _node(st.lists(inner, max_size=2).map(tuple)), max_leaves=4
)


@dataclass(frozen=True)
class Change:
    """One change inside the OMEMO element: ``what`` at the element named ``at``."""

    what: str  # "attr", "child", "text", "tail"
    at: str  # "encrypted", "header", "keys", "key", "payload", "iv"
    name: str = ""
    value: str = ""
    node: Node | None = None


@dataclass(frozen=True)
class Shape:
    """A generated message: extra elements, extra message attributes, one OMEMO change."""

    before: tuple[Node, ...] = ()
    after: tuple[Node, ...] = ()
    message_attrs: tuple[tuple[str, str], ...] = ()
    change: Change | None = None
    message_id: str | None = None  # None: a fresh, well-formed id
    legacy: bool = False


def _find(encrypted: ET.Element, local: str) -> ET.Element | None:
    for element in encrypted.iter():
        if element.tag.rsplit("}", 1)[-1] == local:
            return element
    return None


def apply(change: Change | None, encrypted: ET.Element) -> None:
    """Make ``change`` to a (copy of a) valid OMEMO element."""
    if change is None:
        return
    target = _find(encrypted, change.at)
    if target is None:
        target = encrypted
    if change.what == "attr":
        target.set(change.name, change.value)
    elif change.what == "child" and change.node is not None:
        target.append(change.node.build())
    elif change.what == "text":
        target.text = change.value
    elif change.what == "tail" and len(target):
        target[0].tail = change.value


def render(shape: Shape, omemo: ET.Element, thread: str, message_id: str) -> str:
    """The message as a template (``{marker}`` still in it).

    Children are serialised one by one (each declares its own namespace) so that the
    stanza itself stays an unprefixed ``<message>`` in the stream's ``jabber:client``.
    """
    attrs = {"to": thread, "type": "groupchat", "id": shape.message_id or message_id}
    for name, value in shape.message_attrs:
        attrs["xml:lang" if name == XML_LANG else name] = value
    encrypted = ET.fromstring(ET.tostring(omemo))
    apply(shape.change, encrypted)
    children = [*(n.build() for n in shape.before), encrypted, *(n.build() for n in shape.after)]
    return (
        "<message " + " ".join(f"{name}={quoteattr(value)}" for name, value in attrs.items()) + ">"
        + "".join(ET.tostring(child, encoding="unicode") for child in children)
        + "</message>"
    )  # fmt: skip


_extra_nodes = st.lists(nodes, max_size=2).map(tuple)
_message_attrs = st.lists(
    st.tuples(st.sampled_from(("foo", "lang", XML_LANG, "thread")), hostile_text), max_size=2
).map(lambda pairs: tuple(dict(pairs).items()))

_structure_changes = st.one_of(
    st.none(),
    st.builds(Change, st.just("attr"), st.sampled_from(("encrypted", "header", "keys", "key",
              "payload")), st.sampled_from(OMEMO_ATTRIBUTES), hostile_text),
    st.builds(lambda at, node: Change("child", at, node=node),
              st.sampled_from(("encrypted", "header", "keys", "key", "payload")), nodes),
    st.builds(lambda at, text: Change("text", at, value=text),
              st.sampled_from(("encrypted", "header", "keys")), hostile_text),
    st.builds(lambda at, text: Change("tail", at, value=text),
              st.sampled_from(("encrypted", "header", "keys")), hostile_text),
)  # fmt: skip


def structure() -> st.SearchStrategy[Shape]:
    """Hostile elements, attributes and texts where the allowlist decides today."""
    return st.builds(
        Shape, before=_extra_nodes, after=_extra_nodes, message_attrs=_message_attrs,
        change=_structure_changes,
    )  # fmt: skip


def slots() -> st.SearchStrategy[Shape]:
    """Hostile text in the message id, the base64 texts and the OMEMO flags (issue 8,
    findings 2 and 3), with the same noise around it."""
    text_slot = st.builds(
        lambda at, text: Change("text", at, value=text),
        st.sampled_from(("payload", "key", "iv")), hostile_text,
    )  # fmt: skip
    flag = st.builds(
        lambda name, text: Change("attr", "key", name, text),
        st.sampled_from(("kex", "prekey")), hostile_text | st.just(MARK),
    )  # fmt: skip
    with_id = st.builds(Shape, message_id=hostile_text, after=_extra_nodes)
    with_change = st.builds(
        Shape, change=text_slot | flag, legacy=st.booleans(), message_attrs=_message_attrs
    )
    return with_id | with_change
