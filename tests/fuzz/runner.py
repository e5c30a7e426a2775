"""Runs a corpus case on a rig and says what went wrong, in words (issue 8).

Every case ends with the same invariants, whatever its steps were:

- the component link never dropped (the rig counts the component's ``disconnected``
  events) and disco#info to the component still answers;
- every hostile stanza got the answer its step expects, or is a documented silent drop
  (checked by the steps, see ``flows``);
- the gateway is still responsive: Bob's OMEMO message reaches Alice and decrypts;
- the case's marker is nowhere: not in Alice's or Bob's received bytes, not in any
  table or file of the store, not in the gateway's log; and the gateway logged no
  traceback while the case ran (no input may raise out of a handler).
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

from tests.fuzz.exchange import Context, Outcome
from tests.fuzz.flows import run_step
from tests.fuzz.model import Case
from tests.fuzz.rawclient import local
from tests.fuzz.rig import Rig


def _where(rig: Rig, name: str, marker: str) -> str:
    """The stanza that carried ``marker`` to ``name``, up to the marker."""
    for stanza in rig.client_stanzas(name):
        text = ET.tostring(stanza, encoding="unicode")
        if marker in text:
            at = text.index(marker)
            return f"<{local(stanza.tag)}> ...{text[max(0, at - 160) : at]}"
    return "(split across stanzas)"


async def check_invariants(rig: Rig, case: Case, out: Outcome, links: int, logs: int) -> None:
    """The invariants every case ends with (module docstring)."""
    if not case.restarts_gateway and rig.disconnects != links:
        out.problems.append(f"the component link dropped ({rig.disconnects - links}x)")
    assert rig.gateway is not None
    try:
        await rig.gateway.component.wait_online(timeout=15)
    except TimeoutError:
        out.problems.append("the gateway was not back online within 15 s")
    probe = await rig.probe_link()
    if probe:
        out.problems.append(probe)
    try:
        await rig.ensure_ready()
        await rig.legit_round()
    except (AssertionError, TimeoutError, ConnectionError) as exc:
        out.problems.append(f"not responsive afterwards: {exc or type(exc).__name__}")
    marker = case.marker
    for name in rig.recipient_hits(marker):
        out.problems.append(f"marker reached {name}: {_where(rig, name, marker)}")
    for place in rig.archive_hits([marker]).get(marker, []):
        out.problems.append(f"marker stored ({place})")
    for line in rig.logs.hits(marker):
        out.problems.append(f"marker in the gateway log: {line[:300]}")
    for line in rig.logs.tracebacks(logs):
        lines = line.strip().splitlines()
        out.problems.append(f"traceback in the gateway log: {lines[0][:150]} / {lines[-1][:200]}")


async def run_case(rig: Rig, case: Case) -> Outcome:
    """Run ``case`` on ``rig``: its steps, then the invariants."""
    out = Outcome(case, rig.kind)
    began = time.monotonic()
    await rig.ensure_ready()
    ctx = Context(rig, case)
    links, logs = rig.disconnects, len(rig.logs.lines)
    for step in case.steps:
        try:
            await run_step(rig, ctx, step, out)
        except (TimeoutError, ConnectionError, AssertionError) as exc:
            out.problems.append(f"{type(step).__name__} step broke off: {exc!r}")
            break
    await check_invariants(rig, case, out, links, logs)
    out.seconds = time.monotonic() - began
    return out
