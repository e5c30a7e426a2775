"""Send one stanza, find its answer, and judge the answer against a case (issue 8).

An answer is found by the stanza's ``id`` (the gateway and both servers keep it on
errors and on the reflection of a thread message), and for presences also by address: a
join refusal or a self-presence comes from the ``thread/nick`` the presence went to.
"""

from __future__ import annotations

import asyncio
import itertools
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from tests.fuzz.model import TROUBLE, Case, Expect, Omemo
from tests.fuzz.rawclient import NS_STANZAS, RawClient, error_condition, error_text, local
from tests.fuzz.rig import Rig, is_self_presence

NS_COMMANDS = "http://jabber.org/protocol/commands"
_ids = itertools.count(1)


@dataclass(frozen=True)
class Answer:
    """What came back: ``none``, ``error:<condition>`` (``error:note`` for an ad-hoc
    result with an error note, ``error:stream-closed`` when the server closed the
    sender's stream), ``joined``, ``relayed``, ``result`` or ``other:<tag>``."""

    verdict: str
    text: str = ""
    stanza: ET.Element | None = field(default=None, compare=False, repr=False)
    id_kept: bool = True  # False: the answer's id is the sender's with whitespace changed

    @property
    def kind(self) -> str:
        return self.verdict.partition(":")[0]

    @property
    def condition(self) -> str:
        return self.verdict.partition(":")[2]

    def __str__(self) -> str:
        return f"{self.verdict} ({self.text[:160]})" if self.text else self.verdict


NO_ANSWER = Answer("none")
STREAM_CLOSED = Answer("error:stream-closed", "the server closed the sender's stream")


def classify(answer: ET.Element | None, thread: str) -> Answer:
    if answer is None:
        return NO_ANSWER
    kind = local(answer.tag)
    if answer.get("type") == "error":
        return Answer(f"error:{error_condition(answer)}", error_text(answer), answer)
    if kind == "presence" and is_self_presence(answer, thread):
        return Answer("joined", stanza=answer)
    if kind == "message" and answer.get("type") == "groupchat":
        return Answer("relayed", stanza=answer)
    if kind == "iq" and answer.get("type") == "result":
        notes = answer.findall(f"{{{NS_COMMANDS}}}command/{{{NS_COMMANDS}}}note")
        errors = [n.text or "" for n in notes if n.get("type") == "error"]
        if errors:
            return Answer("error:note", errors[0], answer)
        return Answer("result", stanza=answer)
    return Answer(f"other:{kind}", stanza=answer)


def judge(answer: Answer, expect: Expect) -> str | None:
    """Why ``answer`` does not meet ``expect``; None when it does."""
    if not answer.id_kept:
        return f"answered {answer}, but not with the sender's id (its whitespace changed)"
    if answer.verdict == "none":
        return None if "silent" in expect.kinds else "no answer"
    if answer.kind == "error" and answer.condition in TROUBLE:
        return f"answered {answer}: the gateway got into trouble"
    if answer == STREAM_CLOSED:
        return None  # the server refused it itself; the gateway never saw it
    if expect.kinds == {"silent"}:
        return f"answered {answer} where a silent drop is documented"
    if answer.kind not in expect.kinds:
        return f"answered {answer}, expected {'/'.join(sorted(expect.kinds))}"
    if answer.kind == "error" and expect.conditions and answer.condition not in expect.conditions:
        return f"answered {answer}, expected {'/'.join(sorted(expect.conditions))}"
    return None


def same_address(a: str, b: str) -> bool:
    """Equal after Unicode compatibility normalisation and case folding."""

    def fold(value: str) -> str:
        return unicodedata.normalize("NFKC", value).casefold()

    return fold(a) == fold(b)


def _spaced(value: str) -> str:
    """``value`` as an XML parser reads it back from a raw attribute: whitespace as spaces."""
    return value.replace("\r\n", " ").translate({9: 32, 10: 32, 13: 32})


def _answers(root: ET.Element, thread: str) -> Any:
    kind, sent_id, to = local(root.tag), root.get("id"), root.get("to", "")

    def match(stanza: ET.Element) -> bool:
        if local(stanza.tag) != kind:
            return False
        # An id with a line break written raw (not as &#10;) comes back with a space.
        if sent_id and stanza.get("id") in (sent_id, _spaced(sent_id)):
            return True
        # A join's answer comes from thread/nick, but the server may have prepared the
        # nick (Prosody maps a zero-width space to nothing): any error or self-presence
        # from the same thread is the answer, as cases send one presence at a time.
        return (
            kind == "presence"
            and same_address(stanza.get("from", "").split("/")[0], to.split("/")[0])
            and (stanza.get("type") == "error" or is_self_presence(stanza, thread))
        )

    return match


async def exchange(rig: Rig, client: RawClient, xml: str, timeout: float) -> Answer:
    """Send ``xml`` (well-formed: it is parsed to find the answer) on ``client``."""
    root = ET.fromstring(xml)
    waiting = asyncio.ensure_future(client.wait_for(_answers(root, rig.thread), timeout))
    await asyncio.sleep(0)
    try:
        client.send_raw(xml)
        answer = classify(await waiting, rig.thread)
    except TimeoutError:
        return NO_ANSWER
    except ConnectionError:
        waiting.cancel()
        return STREAM_CLOSED
    sent_id = root.get("id")
    got_id = answer.stanza.get("id") if answer.stanza is not None else None
    if sent_id and got_id != sent_id and got_id == _spaced(sent_id):
        return Answer(answer.verdict, answer.text, answer.stanza, id_kept=False)
    return answer


@dataclass
class Outcome:
    """What one case did: a line per step (the answers) and the problems found."""

    case: Case
    server: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def note(self, line: str) -> None:
        self.lines.append(line)

    def check(self, who: str, answer: Answer, expect: Expect) -> None:
        self.note(f"{who}: {answer}")
        problem = judge(answer, expect)
        if problem:
            self.problems.append(f"{who}: {problem}")

    def as_report(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "case": self.case.id,
            "finding": self.case.finding,
            "answers": self.lines,
            "problems": self.problems,
            "seconds": round(self.seconds, 2),
        }


class Context:
    """Renders a case's templates on one rig (the fields are listed in ``model``)."""

    def __init__(self, rig: Rig, case: Case) -> None:
        self.rig, self.case = rig, case
        self.device = 100_000 + int(case.marker[-5:], 16)

    def fields(self) -> dict[str, str]:
        rig = self.rig
        return {
            "thread": rig.thread,
            "component": rig.component,
            "domain": rig.domain,
            "marker": self.case.marker,
            "id": f"fz{next(_ids)}",
            "early": rig.early_stanza_id,
            "mallory": rig.jid("mallory"),
            "alice": rig.jid("alice"),
            "bob": rig.jid("bob"),
            "owen": rig.jid("owen"),
            "device": str(self.device),
        }

    def text(self, template: str) -> str:
        return template.format_map(self.fields())

    async def render(self, template: str, omemo: Omemo | None = None) -> str:
        values = self.fields()
        if "{omemo}" in template:
            values["omemo"] = await self.omemo(omemo or Omemo())
        return template.format_map(values)

    async def omemo(self, spec: Omemo) -> str:
        """A fresh OMEMO element from Mallory, changed as ``spec`` says."""
        rig = self.rig
        if spec.version == "legacy":
            element = await rig.legacy["mallory"].encrypt("fuzz", [rig.jid("alice")])
        else:
            recipients = [rig.jid("alice"), rig.jid("bob")]
            element = await rig.devices["mallory"].encrypt("fuzz", recipients)
        target, ns = element, element.tag[1:].split("}", 1)[0]
        for name in filter(None, spec.path.split("/")):
            found = target.find(f"{{{ns}}}{name}")
            assert found is not None, f"no {spec.path} in the OMEMO element"
            target = found
        if spec.text is not None:
            text = self.text(spec.text)
            target.text = text + "A" * max(0, spec.pad_to - len(text))
        for name, value in spec.attrs:
            target.set(name, self.text(value))
        if spec.inner:
            target.extend(ET.fromstring(f"<w>{self.text(spec.inner)}</w>"))
        return ET.tostring(element, encoding="unicode")


__all__ = ["NS_STANZAS", "Answer", "Context", "Outcome", "classify", "exchange", "judge"]
