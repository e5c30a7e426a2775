"""Bound a stanza's depth and size before anything copies or walks it (I.12, II.1).

``copy.deepcopy``, slixmpp's stanza classes and ElementTree's Python fallbacks recurse
once per level: 500 nested elements reach the interpreter's recursion limit outside any
error handling. :func:`check_shape` walks the tree with an explicit stack -- no recursion,
however deep -- and stops at the first limit passed, so 100 000 levels cost no more than
the first :data:`MAX_DEPTH`. The relay and the room host call it first, on every stanza
from a client, and answer a refusal with its error; the policy pipeline calls it again
before it copies anything.

The defaults fit every stanza a client sends to a care thread: an OMEMO 2 message to a
thousand devices is about 2 000 elements, 5 levels deep and 300 000 characters; data
forms and PEP payloads are at most 9 levels deep. They are also above the stanza size
Prosody and ejabberd accept from a client by default (256 KiB), so what the server
accepted is never refused here for its size alone.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from xmpp_clinic.policy.verdict import ReasonCode, Verdict

MAX_DEPTH = 16  # the root is level 1
MAX_ELEMENTS = 5000
MAX_CHARS = 512 * 1024  # names, attribute values and text: about the serialised size


def _chars(element: ET.Element) -> int:
    """Characters of one element's name, attributes and text (not its children)."""
    size = len(str(element.tag)) + len(element.text or "") + len(element.tail or "")
    return size + sum(len(name) + len(value) for name, value in element.attrib.items())


def check_shape(
    element: ET.Element,
    *,
    max_depth: int = MAX_DEPTH,
    max_elements: int = MAX_ELEMENTS,
    max_chars: int = MAX_CHARS,
) -> Verdict:
    """Accept ``element`` if it is within the limits, else refuse it as
    ``stanza-too-large`` with a sentence naming the limit (I.12).

    Iterative and early-stopping: the work is bounded by the limits, not by the input.
    """
    pending: list[tuple[ET.Element, int]] = [(element, 1)]
    elements, chars = 1, 0  # elements seen so far, counted when their parent is reached
    while pending:
        node, depth = pending.pop()
        if depth > max_depth:
            return _refuse(f"it is nested more than {max_depth} levels deep")
        elements += len(node)
        if elements > max_elements:
            return _refuse(f"it has more than {max_elements} elements")
        chars += _chars(node)
        if chars > max_chars:
            return _refuse(f"it is larger than {max_chars} characters")
        pending.extend((child, depth + 1) for child in node)
    return Verdict.accept()


def _refuse(why: str) -> Verdict:
    return Verdict.reject(ReasonCode.STANZA_TOO_LARGE, f"The stanza was not accepted: {why}.")
