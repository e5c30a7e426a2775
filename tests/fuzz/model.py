"""The vocabulary of the hostile-input corpus: cases, steps, expected answers (issue 8).

A :class:`Case` is one hostile input, tied to a finding of issue 8, written as data: the
steps that send it, what the gateway must answer to each, and -- while the finding is
open -- what the gateway does today on each server kind (``today``), which the suite
turns into ``xfail(strict=True)`` so that a fix that lands without removing the entry
turns the suite red.

Templates are ``str.format`` strings over these fields (see ``runner.Context``):
``{thread}`` the care thread, ``{component}``, ``{domain}``, ``{marker}`` the case's
marker text, ``{id}`` a fresh stanza id, ``{omemo}`` a fresh valid OMEMO element from
Mallory for Alice and Bob (mutated as the step's :class:`Omemo` says), ``{early}`` the
stanza-id of a message archived before Mallory became a member, ``{mallory}``,
``{alice}``, ``{bob}``, ``{owen}`` bare JIDs, ``{device}`` an approved device of Owen's
registered for this case only (when a command's fields name it).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

# Error conditions that say "the gateway got into trouble", never an acceptable answer.
TROUBLE = frozenset({"internal-server-error", "undefined-condition"})

AnswerKind = Literal["error", "relayed", "joined", "result", "silent"]
Version = Literal["omemo2", "legacy"]


def marker_for(case_id: str) -> str:
    """The unique text a case's hostile payload carries: ``PHIMARKER`` + 8 hex digits.

    Letters and digits only, so it also fits where base64 or a language tag is expected.
    """
    return "PHIMARKER" + hashlib.sha256(case_id.encode()).hexdigest()[:8].upper()


@dataclass(frozen=True)
class Expect:
    """The answers a hostile stanza may get.

    ``kinds``: ``error`` (an error stanza, or an ad-hoc result with an error note),
    ``relayed`` (the thread reflected the message: it passed, marker checks decide),
    ``joined`` (a self-presence), ``result`` (an iq result), ``silent`` (a documented
    silent drop: no answer within the wait). ``conditions`` narrows ``error`` to these
    defined conditions; an error in :data:`TROUBLE` never counts.
    """

    kinds: frozenset[AnswerKind]
    conditions: frozenset[str] = frozenset()


def error(*conditions: str) -> Expect:
    return Expect(frozenset({"error"}), frozenset(conditions))


def error_or(*kinds: AnswerKind, conditions: tuple[str, ...] = ()) -> Expect:
    return Expect(frozenset({"error", *kinds}), frozenset(conditions))


SILENT = Expect(frozenset({"silent"}))


@dataclass(frozen=True)
class Omemo:
    """How ``{omemo}`` is made: a fresh element of ``version``, then one change.

    ``path`` names the element to change inside ``<encrypted>`` by local names
    (``payload``, ``header``, ``header/iv``, ``header/key``, ``header/keys/key``): its
    text becomes ``text`` (a template; padded with ``A`` to ``pad_to`` characters),
    ``attrs`` are set on it, and ``inner`` (raw XML) is appended inside it.
    """

    version: Version = "omemo2"
    path: str = ""
    text: str | None = None
    pad_to: int = 0
    attrs: tuple[tuple[str, str], ...] = ()
    inner: str = ""


@dataclass(frozen=True)
class Send:
    """``actor`` sends ``xml``; the answer must match ``expect``."""

    actor: str
    xml: str
    expect: Expect
    omemo: Omemo = Omemo()


@dataclass(frozen=True)
class Command:
    """``actor`` runs ad-hoc command ``node``: start, then submit ``fields``."""

    actor: str
    node: str
    fields: tuple[tuple[str, str], ...]
    expect: Expect


@dataclass(frozen=True)
class Flood:
    """``actor`` starts ``count`` sessions of ad-hoc ``node`` at once: each gets an
    answer, none a server error, and at least one is refused with ``refusal``."""

    actor: str
    node: str
    count: int
    refusal: str = "resource-constraint"


@dataclass(frozen=True)
class CompletedSessions:
    """``actor`` runs ad-hoc ``node`` to completion ``count`` times (submitting with
    ``execute``, as some clients do): the component must not keep the finished sessions,
    and continuing a finished one is an error or a fresh start, never a server error."""

    actor: str
    node: str
    fields: tuple[tuple[str, str], ...]
    count: int = 20


@dataclass(frozen=True)
class SameAnswer:
    """``actor`` sends two iq templates; the answers must not tell them apart."""

    actor: str
    first: str
    second: str


@dataclass(frozen=True)
class Session:
    """A new session of ``actor`` with resource ``resource`` sends ``xml``.

    A server that refuses to bind the resource has answered; otherwise ``expect``.
    """

    actor: str
    resource: str
    xml: str
    expect: Expect


@dataclass(frozen=True)
class Leave:
    """``actor`` leaves the thread as ``nick`` (first: to take a nick while away)."""

    actor: str
    nick: str


@dataclass(frozen=True)
class KillRestart:
    """kill -9 of a running gateway ``settle`` seconds after its members joined, a new one
    started on the same store; then a member who never rejoined must still receive, or
    be told to rejoin (finding 10)."""

    settle: float = 0.0


Step = Send | Command | Flood | CompletedSessions | SameAnswer | Session | Leave | KillRestart


@dataclass(frozen=True)
class Case:
    """One hostile input of issue 8 (``finding`` 1..11), with its steps."""

    id: str
    finding: int
    what: str
    steps: tuple[Step, ...]
    today: dict[str, str] = field(default_factory=dict)  # server kind -> what happens
    restarts_gateway: bool = False

    @property
    def marker(self) -> str:
        return marker_for(self.id)


def case(
    case_id: str,
    what: str,
    *steps: Step,
    today: dict[str, str] | None = None,
    restarts_gateway: bool = False,
) -> Case:
    """A :class:`Case` whose finding is read from its id (``f<N>-...``; 0 otherwise)."""
    head = case_id.split("-", 1)[0]
    finding = int(head[1:]) if head[:1] == "f" and head[1:].isdigit() else 0
    return Case(case_id, finding, what, steps, today or {}, restarts_gateway)


def both(finding: int, what: str) -> dict[str, str]:
    """``today`` for a case that fails the same way on both servers."""
    reason = f"issue 8 finding {finding}: {what}"
    return {"prosody": reason, "ejabberd": reason}


def on(kind: str, finding: int, what: str) -> dict[str, str]:
    """``today`` for a case that fails on one server only (the other refuses it itself)."""
    return {kind: f"issue 8 finding {finding}: {what}"}


def big(size: int, words: str = "Hans Mueller K+ 6.1 bed 12 ") -> str:
    """A template of ``size`` characters of ``words`` repeated, then the marker."""
    return (words * (size // len(words) + 1))[:size] + " {marker}"


def deep(depth: int, ns: str = "urn:example:deep") -> str:
    """``depth`` nested ``<x>`` elements with the marker at the bottom."""
    return f"<x xmlns='{ns}'>" * depth + "{marker}" + "</x>" * depth
