"""Re-join, nick change, queries to occupants and a kill -9, on Prosody and ejabberd.

Issues 9.4, 9.5, 9.6 and 8.10, through a real server: raw clients (the fuzz suite's,
tests/fuzz/rawclient.py) see exactly the stanzas the gateway sends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from tests.fuzz.rawclient import RawClient, attr, local
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from xmpp_clinic import namespaces as ns
from xmpp_clinic.dev.servers import DevServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ANSWER = 10.0


def codes(stanza: ET.Element) -> set[str]:
    return {s.get("code", "") for s in stanza.iter(f"{{{ns.MUC_USER}}}status")}


def from_thread(thread: str, kind: str = "presence") -> Callable[[ET.Element], bool]:
    return lambda s: local(s.tag) == kind and s.get("from", "").split("/")[0] == thread


async def seen(
    client: RawClient, start: int, predicate: Callable[[ET.Element], bool]
) -> ET.Element:
    """The first stanza received since ``start`` for which ``predicate`` holds."""
    for _ in range(int(ANSWER / 0.05)):
        for stanza in client.stanzas[start:]:
            if predicate(stanza):
                return stanza
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing matched within {ANSWER}s")


async def login(bare: str, server: DevServer, resource: str = "raw") -> RawClient:
    return await RawClient(bare.split("@")[0], PASSWORD, server, resource=resource).login()


async def join(client: RawClient, thread: str, nick: str) -> list[ET.Element]:
    """Join; every stanza from the thread up to and including the subject."""
    start = len(client.stanzas)
    client.send_raw(f"<presence to={attr(f'{thread}/{nick}')}><x xmlns='{ns.MUC}'/></presence>")
    await client.wait_for(
        lambda s: (
            from_thread(thread, "message")(s) and s.find(f"{{{ns.CLIENT}}}subject") is not None
        ),
        ANSWER,
    )
    return [s for s in client.stanzas[start:] if s.get("from", "").startswith(thread)]


async def thread_with(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]], make_users: Callable[..., list[str]]
) -> tuple[GatewayHandle, str, RawClient, RawClient]:
    alice, bob = make_users("alice", "bob")
    handle = await gateway_factory()
    await handle.gateway.threads.create("ward", "Ward", [alice, bob])
    await handle.gateway.thread_host.refresh()
    thread = f"ward@{handle.jid}"
    a, b = await login(alice, handle.server), await login(bob, handle.server)
    await join(a, thread, "Alice")
    await join(b, thread, "Bob")
    return handle, thread, a, b


@pytest.mark.requirement("II.4")
async def test_a_rejoin_is_a_full_resync(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    _handle, thread, alice, bob = await thread_with(gateway_factory, make_users)
    try:
        got = await join(alice, thread, "Alice")
        presences = [s for s in got if local(s.tag) == "presence"]
        assert [p.get("from") for p in presences] == [f"{thread}/Bob", f"{thread}/Alice"]
        assert "110" in codes(presences[-1]) and local(got[-1].tag) == "message"
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.requirement("II.4")
async def test_a_nick_change_is_seen_by_everyone_as_303_then_the_new_nick(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    _handle, thread, alice, bob = await thread_with(gateway_factory, make_users)
    try:
        marks = len(alice.stanzas), len(bob.stanzas)
        alice.send_raw(f"<presence to={attr(f'{thread}/Ally')}/>")
        gone = await seen(bob, marks[1], lambda s: s.get("from") == f"{thread}/Alice")
        assert gone.get("type") == "unavailable" and codes(gone) == {"303"}
        item = gone.find(f"{{{ns.MUC_USER}}}x/{{{ns.MUC_USER}}}item")
        assert item is not None and item.get("nick") == "Ally"
        back = await seen(bob, marks[1], lambda s: s.get("from") == f"{thread}/Ally")
        assert back.get("type") is None
        mine = await seen(alice, marks[0], lambda s: s.get("from") == f"{thread}/Ally")
        assert "110" in codes(mine)
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.requirement("II.4")
async def test_a_version_query_to_an_occupant_is_answered_by_that_occupant(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    _handle, thread, alice, bob = await thread_with(gateway_factory, make_users)
    try:
        alice.send_raw(
            f"<iq type='get' id='v1' to={attr(f'{thread}/Bob')}><query xmlns='{ns.VERSION}'/></iq>"
        )
        asked = await bob.wait_for(
            lambda s: local(s.tag) == "iq" and s.get("type") == "get", ANSWER
        )
        assert asked.get("from") == f"{thread}/Alice"
        bob.send_raw(
            f"<iq type='result' id={attr(asked.get('id', ''))} to={attr(asked.get('from', ''))}>"
            f"<query xmlns='{ns.VERSION}'><name>RawBob</name><version>1</version></query></iq>"
        )
        answer = await alice.wait_for(lambda s: s.get("id") == "v1", ANSWER)
        assert answer.get("type") == "result" and answer.get("from") == f"{thread}/Bob"
        assert answer.findtext(f".//{{{ns.VERSION}}}name") == "RawBob"
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.requirement("I.12")
async def test_after_kill_9_the_sessions_that_were_joined_are_told_to_rejoin(
    xmpp_server: DevServer, make_users: Callable[..., list[str]], tmp_path: Path
) -> None:
    alice, bob = make_users("alice", "bob")
    config = write_config(xmpp_server, tmp_path)
    env = {**os.environ, "XMPP_CLINIC_CONFIG": str(config)}

    def cli(*args: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "xmpp_clinic", *args],
            env=env,
            check=True,
            timeout=60,
            capture_output=True,
        )

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "xmpp_clinic", "run"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    cli("threads", "create", "ward", "--title", "Ward", "--member", alice, "--member", bob)
    thread = f"ward@{xmpp_server.component_jid}"
    first = run()
    a = await login(alice, xmpp_server)
    try:
        for _ in range(100):  # until the gateway is online and answers the join
            try:
                await join(a, thread, "Alice")
                break
            except TimeoutError:
                continue
        await asyncio.sleep(1.0)  # the journal's batch is written
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        second = run()
        try:
            told = await a.wait_for(lambda s: s.get("from") == f"{thread}/Alice", 60)
            assert told.get("type") == "unavailable" and {"332", "110"} <= codes(told)
            await join(a, thread, "Alice")  # and the rejoin works
        finally:
            second.terminate()
            second.wait(timeout=20)
    finally:
        if first.poll() is None:
            first.kill()
        await a.close()


@pytest.mark.requirement("IV.2")
async def test_a_lookalike_of_a_present_nick_is_refused(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    _handle, thread, alice, bob = await thread_with(gateway_factory, make_users)
    try:
        room = f"{thread}/\u0410lice"  # a Cyrillic capital A
        mark = len(bob.stanzas)
        bob.send_raw(f"<presence to={attr(room)}><x xmlns='{ns.MUC}'/></presence>")
        answer = await seen(bob, mark, lambda s: s.get("type") == "error")
        assert answer.get("from") == room
        assert answer.find(f"{{{ns.CLIENT}}}error/{{{ns.STANZAS}}}conflict") is not None
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.requirement("II.1")
async def test_status_text_in_a_presence_never_reaches_other_members(
    gateway_factory: Callable[..., Awaitable[GatewayHandle]],
    make_users: Callable[..., list[str]],
) -> None:
    _handle, thread, alice, bob = await thread_with(gateway_factory, make_users)
    marker = "MARKER-bed-12-K-6-1"
    try:
        mark = len(bob.stanzas)
        alice.send_raw(
            f"<presence to={attr(f'{thread}/Alice')}><show>away</show>"
            f"<status>{marker}</status><x xmlns='jabber:x:oob'><url>https://{marker}</url></x>"
            "</presence>"
        )
        update = await seen(bob, mark, lambda s: s.get("from") == f"{thread}/Alice")
        assert update.findtext(f"{{{ns.CLIENT}}}show") == "away"
        await asyncio.sleep(0.5)
        assert marker not in bob.text_received()
    finally:
        await alice.close()
        await bob.close()
