"""How each kind of corpus step is carried out on a rig (see ``model`` for the steps)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from xml.sax.saxutils import escape

from tests.fuzz.exchange import (
    NO_ANSWER,
    NS_COMMANDS,
    Answer,
    Context,
    Outcome,
    classify,
    exchange,
)
from tests.fuzz.model import (
    Command,
    CompletedSessions,
    Flood,
    KillRestart,
    Leave,
    SameAnswer,
    Send,
    Session,
    Step,
    error,
    error_or,
)
from tests.fuzz.rawclient import LoginError, attr, local
from tests.fuzz.rig import ANSWER_TIMEOUT, NICKS, Rig

SILENT_WAIT = 1.5
NS_DATA = "jabber:x:data"
NS_MAM = "urn:xmpp:mam:2"
NS_RSM = "http://jabber.org/protocol/rsm"
FLOOD_TIMEOUT = 60.0
KILLED_GATEWAY_START = 60.0


async def send(rig: Rig, ctx: Context, step: Send, out: Outcome) -> None:
    xml = await ctx.render(step.xml, step.omemo)
    timeout = SILENT_WAIT if "silent" in step.expect.kinds else ANSWER_TIMEOUT
    answer = await exchange(rig, rig.clients[step.actor], xml, timeout)
    root = ET.fromstring(xml)
    out.check(f"{step.actor}'s <{local(root.tag)}>", answer, step.expect)
    if answer.verdict == "joined" and step.actor not in NICKS:
        rig.leave(step.actor, root.get("to", "").split("/", 1)[-1])  # a lookalike leaves


def _start(node: str) -> str:
    return (
        "<iq type='set' to='{component}' id='{id}'>"
        f"<command xmlns='{NS_COMMANDS}' node={attr(node)} action='execute'/></iq>"
    )


def _submit(ctx: Context, node: str, sessionid: str, fields: tuple[tuple[str, str], ...],
            action: str) -> str:  # fmt: skip
    values = "".join(
        f"<field var={attr(var)}><value>{escape(ctx.text(value))}</value></field>"
        for var, value in fields
    )
    return ctx.text(
        f"<iq type='set' to='{{component}}' id='{{id}}'><command xmlns='{NS_COMMANDS}' "
        f"node={attr(node)} sessionid={attr(sessionid)} action='{action}'>"
        f"<x xmlns='{NS_DATA}' type='submit'>{values}</x></command></iq>"
    )


def _sessionid(answer: Answer) -> str:
    assert answer.stanza is not None
    command = answer.stanza.find(f"{{{NS_COMMANDS}}}command")
    return command.get("sessionid", "") if command is not None else ""


async def command(rig: Rig, ctx: Context, step: Command, out: Outcome) -> None:
    client = rig.clients[step.actor]
    if any("{device}" in value for _var, value in step.fields):
        await rig.register_device("owen", ctx.device)  # something to act on
    first = await exchange(rig, client, ctx.text(_start(step.node)), ANSWER_TIMEOUT)
    if first.verdict != "result":
        out.check(f"{step.actor} starts {step.node}", first, step.expect)
        return
    submit = _submit(ctx, step.node, _sessionid(first), step.fields, "complete")
    final = await exchange(rig, client, submit, ANSWER_TIMEOUT)
    out.check(f"{step.actor} submits {step.node}", final, step.expect)


def _held_sessions(rig: Rig) -> int:
    """Ad-hoc sessions the component holds (slixmpp's store; for the report only)."""
    assert rig.gateway is not None
    return len(getattr(rig.gateway.component.plugin["xep_0050"], "sessions", {}))


def _iq_answer(iq_id: str) -> Callable[[ET.Element], bool]:
    return lambda stanza: local(stanza.tag) == "iq" and stanza.get("id") == iq_id


async def flood(rig: Rig, ctx: Context, step: Flood, out: Outcome) -> None:
    client = rig.clients[step.actor]
    held = _held_sessions(rig)
    ids = [f"flood-{ctx.case.marker}-{n}" for n in range(step.count)]
    waits = [asyncio.ensure_future(client.wait_for(_iq_answer(i), FLOOD_TIMEOUT)) for i in ids]
    await asyncio.sleep(0)
    start = _start(step.node).replace("{id}", "{flood_id}")
    client.send_raw("".join(ctx.text(start.replace("{flood_id}", i)) for i in ids))
    results = await asyncio.gather(*waits, return_exceptions=True)
    tally = Counter(
        classify(r, rig.thread).verdict if isinstance(r, ET.Element) else "none" for r in results
    )
    out.note(
        f"{step.actor} started {step.node} {step.count}x: {dict(tally)}; "
        f"sessions held {held} -> {_held_sessions(rig)}"
    )
    if tally["none"]:
        out.problems.append(f"{tally['none']} of {step.count} starts got no answer")
    trouble = {v: n for v, n in tally.items() if v in ("error:internal-server-error",
                                                         "error:undefined-condition")}  # fmt: skip
    if trouble:
        out.problems.append(f"server errors: {trouble}")
    if not tally[f"error:{step.refusal}"]:
        out.problems.append(
            f"none of {step.count} sessions was refused with {step.refusal}: no cap"
        )
    started = [r for r in results if isinstance(r, ET.Element) and r.get("type") == "result"]
    await _cancel(rig, ctx, step.actor, step.node, started)


async def _cancel(rig: Rig, ctx: Context, actor: str, node: str, answers: list[ET.Element]) -> None:
    """Cancel the sessions that ``answers`` opened, so the next case starts under the cap."""
    client = rig.clients[actor]
    for answer in answers:
        command = answer.find(f"{{{NS_COMMANDS}}}command")
        sessionid = command.get("sessionid", "") if command is not None else ""
        cancel = (
            f"<iq type='set' to='{{component}}' id='{{id}}'><command xmlns='{NS_COMMANDS}' "
            f"node={attr(node)} sessionid={attr(sessionid)} action='cancel'/></iq>"
        )
        await exchange(rig, client, ctx.text(cancel), ANSWER_TIMEOUT)


async def completed_sessions(rig: Rig, ctx: Context, step: CompletedSessions, out: Outcome) -> None:
    client = rig.clients[step.actor]
    held = _held_sessions(rig)
    sessionid, done = "", NO_ANSWER
    for _ in range(step.count):
        first = await exchange(rig, client, ctx.text(_start(step.node)), ANSWER_TIMEOUT)
        if first.verdict != "result":
            out.problems.append(f"{step.node} did not start: {first}")
            return
        sessionid = _sessionid(first)
        submit = _submit(ctx, step.node, sessionid, step.fields, "execute")
        done = await exchange(rig, client, submit, ANSWER_TIMEOUT)
    kept = _held_sessions(rig) - held
    out.note(f"{step.actor} ran {step.node} {step.count}x: last {done}; sessions held +{kept}")
    if kept >= step.count:
        out.problems.append(f"all {step.count} completed sessions are still held in memory")
    submit = _submit(ctx, step.node, sessionid, step.fields, "execute")
    again = await exchange(rig, client, submit, ANSWER_TIMEOUT)
    out.check(f"{step.actor} continues a completed session", again, error_or("result"))
    if again.verdict == "result" and _sessionid(again) == sessionid:
        out.problems.append("the completed session ran again")


def _mam_summary(answer: Answer) -> tuple[str, str, str]:
    fin = answer.stanza.find(f"{{{NS_MAM}}}fin") if answer.stanza is not None else None
    if fin is None:
        return answer.verdict, "", ""
    return (
        answer.verdict,
        fin.get("complete", "false"),
        fin.findtext(f"{{{NS_RSM}}}set/{{{NS_RSM}}}count") or "",
    )


async def same_answer(rig: Rig, ctx: Context, step: SameAnswer, out: Outcome) -> None:
    client = rig.clients[step.actor]
    first = await exchange(rig, client, ctx.text(step.first), ANSWER_TIMEOUT)
    second = await exchange(rig, client, ctx.text(step.second), ANSWER_TIMEOUT)
    out.note(f"{step.actor}: first {first}; second {second}")
    for answer in (first, second):
        if answer.verdict == "none" or answer.condition in ("internal-server-error",):
            out.problems.append(f"{step.actor}: {answer}")
    if _mam_summary(first) != _mam_summary(second):
        out.problems.append(
            f"the answers tell the two apart: {_mam_summary(first)} vs {_mam_summary(second)}"
        )


async def session(rig: Rig, ctx: Context, step: Session, out: Outcome) -> None:
    resource = ctx.text(step.resource)
    try:
        client = await rig.extra_client(step.actor, resource)
    except (LoginError, TimeoutError, ConnectionError) as exc:
        out.note(f"the server refused the resource: {exc}")
        return
    out.note(f"the server bound {client.jid!r}")
    answer = await exchange(rig, client, ctx.text(step.xml), ANSWER_TIMEOUT)
    out.check(f"{step.actor}'s odd session", answer, step.expect)


# The gateway to be killed runs in its own process, started as `xmpp-clinic run` would
# run it (without the CLI's argument parsing).
_RUN = (
    "import asyncio, sys\n"
    "from xmpp_clinic.app import run_gateway\n"
    "from xmpp_clinic.config import load_settings\n"
    "asyncio.run(run_gateway(load_settings(sys.argv[1])))\n"
)


async def _start_doomed_gateway(rig: Rig, out: Outcome) -> subprocess.Popen[bytes] | None:
    """A gateway in a child process, online; None (with the reason noted) if not."""
    assert rig.config_path is not None
    path = rig.run_dir / "killed-gateway.log"
    with path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _RUN, str(rig.config_path)], stdout=log, stderr=log
        )
    for _ in range(int(KILLED_GATEWAY_START / 0.25)):
        if proc.poll() is not None:
            break
        if await rig.probe_link() is None:
            return proc
        await asyncio.sleep(0.25)
    proc.kill()
    proc.wait()
    tail = path.read_text(errors="replace").strip().splitlines()[-1:]
    out.problems.append(f"the gateway to be killed never came online: {tail}")
    return None


async def kill_restart(rig: Rig, step: KillRestart, out: Outcome) -> None:
    """kill -9 a gateway with occupants, start another: is anyone left out silently?"""
    await rig.stop_gateway()
    proc = await _start_doomed_gateway(rig, out)
    if proc is None:
        await rig.start_gateway()
        return
    alice = rig.clients["alice"]
    try:
        # Alice joins last: with settle=0 the kill follows her acknowledged join at once.
        for name in ("bob", "mallory", "alice"):
            joined = await rig.join(name, NICKS[name])
            out.note(f"{name} joins the gateway about to be killed: {classify(joined, rig.thread)}")
        await asyncio.sleep(step.settle)
    finally:
        seen = len(alice.stanzas)
        proc.kill()  # SIGKILL: no 332, nothing flushed
        proc.wait()
    await rig.start_gateway()
    encrypted = await rig.omemo("bob", "after the restart", ["alice"])
    xml = f"<message to={attr(rig.thread)} type='groupchat' id='after-kill'>{encrypted}</message>"
    answer = await exchange(rig, rig.clients["bob"], xml, ANSWER_TIMEOUT)
    out.check("bob, whose session the new gateway does not know, sends", answer,
              error("not-acceptable"))  # fmt: skip
    await rig.join("bob", "Bob")
    try:
        await rig.legit_round()
        out.note("alice, who never rejoined, still receives")
        return
    except AssertionError as exc:
        out.note(f"alice, who never rejoined: {exc}")
    told = [
        s for s in alice.stanzas[seen:]
        if s.get("from", "").startswith(rig.thread) and s.get("type") in ("unavailable", "error")
    ]  # fmt: skip
    if told:
        out.note(f"alice was told to rejoin: {ET.tostring(told[0], encoding='unicode')[:300]}")
    else:
        out.problems.append(
            "alice stopped receiving after the restart and was not told to rejoin "
            "(no presence, no error from the thread)"
        )


async def run_step(rig: Rig, ctx: Context, step: Step, out: Outcome) -> None:
    if isinstance(step, Send):
        await send(rig, ctx, step, out)
    elif isinstance(step, Command):
        await command(rig, ctx, step, out)
    elif isinstance(step, Flood):
        await flood(rig, ctx, step, out)
    elif isinstance(step, CompletedSessions):
        await completed_sessions(rig, ctx, step, out)
    elif isinstance(step, SameAnswer):
        await same_answer(rig, ctx, step, out)
    elif isinstance(step, Session):
        await session(rig, ctx, step, out)
    elif isinstance(step, Leave):
        rig.leave(step.actor, step.nick)
        await asyncio.sleep(0.3)
    elif isinstance(step, KillRestart):
        await kill_restart(rig, step, out)
