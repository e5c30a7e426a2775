"""Generated hostile messages through the real component stream, on both servers (issue 8).

Hypothesis writes thread messages from ``grammar``: Mallory's valid OMEMO element with
hostile elements, attributes and texts around it and inside it, each carrying a fresh
marker. Every example is sent as it is (a stanza-level fast path: one pre-built OMEMO
element per rig, no encryption per example, the answer found by id) and must keep the
invariants of the corpus (II.1, II.3, I.12): an answer (a refusal or the reflection), no
server error, the component link up, the marker at no recipient, in no table or file of
the store and in no log record, no traceback; every tenth example, and after the run,
Bob's OMEMO message must still reach Alice.

Bounded (200 + 100 examples) to finish well inside two minutes per server: derandomised
(the same examples every run), no example database, no shrinking (a failure prints its
stanza instead).
"""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from collections import Counter

import pytest
from hypothesis import HealthCheck, Phase, given, settings

from tests.fuzz.conftest import SERVER_KINDS
from tests.fuzz.exchange import exchange, judge
from tests.fuzz.grammar import MARK, Shape, render, slots, structure
from tests.fuzz.model import error_or
from tests.fuzz.rig import ANSWER_TIMEOUT, Rig

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(300),
    pytest.mark.requirement("II.1", "II.3", "I.12"),
]

ANY_ANSWER = error_or("relayed")  # any refusal but a server error, or let through cleaned
RESPONSIVE_EVERY = 10
_examples = itertools.count(1)
_elements: dict[tuple[str, bool], ET.Element] = {}
_links: dict[str, int] = {}
_answers: dict[str, Counter[str]] = {kind: Counter() for kind in SERVER_KINDS}


def bounded(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=(HealthCheck.too_slow,),
    )


async def _valid_omemo(rig: Rig, legacy: bool) -> ET.Element:
    """Mallory's valid element, made once per rig and version."""
    key = (rig.kind, legacy)
    if key not in _elements:
        if legacy:
            element = await rig.legacy["mallory"].encrypt("fuzz", [rig.jid("alice")])
        else:
            recipients = [rig.jid("alice"), rig.jid("bob")]
            element = await rig.devices["mallory"].encrypt("fuzz", recipients)
        _elements[key] = element
        await rig.ensure_ready()
        _links.setdefault(rig.kind, rig.disconnects)
    return _elements[key]


async def keeps_the_invariants(rig: Rig, shape: Shape) -> None:
    """Send one generated message; raise AssertionError naming every broken invariant."""
    n = next(_examples)
    marker = f"PHIMARKERG{n:07d}"
    template = render(shape, await _valid_omemo(rig, shape.legacy), rig.thread, f"gen{n}")
    xml = template.replace(MARK, marker)
    links, logs = rig.disconnects, len(rig.logs.lines)
    answer = await exchange(rig, rig.clients["mallory"], xml, ANSWER_TIMEOUT)
    _answers[rig.kind][answer.kind] += 1
    problems = [f"answer: {answer}"] if judge(answer, ANY_ANSWER) else []
    if rig.disconnects != links:
        problems.append("the component link dropped")
    problems += [f"marker reached {name}" for name in rig.recipient_hits(marker)]
    problems += [f"marker stored ({p})" for p in rig.archive_hits([marker]).get(marker, [])]
    problems += [f"marker in the log: {line[:200]}" for line in rig.logs.hits(marker, logs)]
    problems += [f"traceback: {t.splitlines()[-1][:200]}" for t in rig.logs.tracebacks(logs)]
    if not problems and n % RESPONSIVE_EVERY == 0:
        await rig.ensure_ready()
        await rig.legit_round()
    if problems:
        raise AssertionError("\n".join([f"sent: {xml[:1500]}", f"answer: {answer}", *problems]))


@pytest.mark.parametrize("rig", SERVER_KINDS, indirect=True)
@bounded(200)
@given(shape=structure())
async def test_generated_messages_keep_the_invariants(rig: Rig, shape: Shape) -> None:
    await keeps_the_invariants(rig, shape)


# What the slots grammar finds today, per server (xfail, strictly, while it is open).
_LINE_BREAK_PROSODY = (
    "issue 8 finding 2: Prosody writes a message id's line break raw on the component stream "
    "(util.stanza's xml_escape leaves it), so the gateway receives a space and its refusal "
    "cannot carry the sender's id; the gateway writes &#10; (ejabberd passes)"
)
SLOTS_TODAY = {"prosody": _LINE_BREAK_PROSODY}


@pytest.mark.parametrize(
    "rig",
    [
        pytest.param(kind, marks=[pytest.mark.xfail(strict=True, reason=SLOTS_TODAY[kind])])
        if kind in SLOTS_TODAY
        else kind
        for kind in SERVER_KINDS
    ],
    indirect=True,
)
@bounded(100)
@given(shape=slots())
async def test_generated_slots_keep_the_invariants(rig: Rig, shape: Shape) -> None:
    await keeps_the_invariants(rig, shape)


@pytest.mark.parametrize("rig", SERVER_KINDS, indirect=True)
async def test_gateway_responsive_after_the_generated_messages(rig: Rig) -> None:
    """After the generated batches: still relaying, link never dropped, and the grammar
    reached both sides of the policy (some messages refused, some let through)."""
    answers = _answers[rig.kind]
    assert answers["error"] and answers["relayed"], f"one-sided grammar: {dict(answers)}"
    await rig.ensure_ready()
    await rig.legit_round()
    assert await rig.probe_link() is None
    assert rig.disconnects == _links.get(rig.kind, rig.disconnects), "the component link dropped"
