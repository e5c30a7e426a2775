"""Per-thread sequence numbers with real OMEMO clients on Prosody and ejabberd (issue 11, II.2).

Two members talk in a thread, the gateway is stopped and a new one started on the same
config and store, they talk on: every copy they receive live and every MAM result carries
``<seq xmlns='urn:xmpp-clinic:seq:0' n='N'/>``, strictly increasing across the restart and
identical live and in MAM. An archived row deleted behind the gateway's back is named by
``xmpp-clinic audit verify`` as the thread's missing sequence number.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from slixmpp import ClientXMPP
from sqlalchemy.engine import make_url

from tests.helpers.bots import disconnect_bot
from tests.helpers.omemo import (
    MemoryStorage,
    OmemoInbox,
    connect_omemo_bot,
    fetch_thread_history,
    join_thread,
    send_omemo_groupchat,
)
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import acreate_thread
from xmpp_clinic import namespaces as ns
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.requirement("II.2"),
    pytest.mark.timeout(300),
]

MakeUsers = Callable[..., list[str]]
SEQ = f"{{{ns.CLINIC_SEQ}}}seq"


class Restartable:
    """One gateway config and store; ``restart`` stops the gateway and starts a new one."""

    def __init__(self, server: DevServer, path: Path) -> None:
        self.server = server
        self.path = path
        self.handle: GatewayHandle | None = None

    async def start(self) -> GatewayHandle:
        settings = load_settings(self.path)
        gateway = Gateway(settings)
        self.handle = GatewayHandle(gateway, settings, self.path, self.server)
        await gateway.start()
        await gateway.component.wait_online(timeout=15)
        return self.handle

    async def stop(self) -> None:
        if self.handle is not None:
            handle, self.handle = self.handle, None
            await handle.gateway.stop()

    async def restart(self) -> GatewayHandle:
        await self.stop()
        return await self.start()


@pytest.fixture
async def restartable(xmpp_server: DevServer, tmp_path: Path) -> AsyncIterator[Restartable]:
    gateways = Restartable(
        xmpp_server, write_config(xmpp_server, tmp_path, policy={"device_approval": "all"})
    )
    try:
        yield gateways
    finally:
        await gateways.stop()


def seq_of(stanza: ET.Element) -> int:
    found = stanza.find(SEQ)
    assert found is not None, "a relayed message without <seq/>"
    return int(found.get("n", ""))


def strictly_increasing(seqs: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(seqs))


async def talk(
    users: list[str],
    storages: list[MemoryStorage],
    gw: GatewayHandle,
    thread: str,
    texts: list[str],
) -> list[list[int]]:
    """Both members log in and join, each text is sent in turn (alternating senders) and
    read by both; the seq of every copy each member received live, in arrival order."""
    bots: list[ClientXMPP] = list(
        await asyncio.gather(
            *(
                connect_omemo_bot(u, PASSWORD, gw.server, storage=s)
                for u, s in zip(users, storages, strict=True)
            )
        )
    )
    try:
        inboxes = [OmemoInbox(bot) for bot in bots]
        for bot, nick in zip(bots, ("Dr Alice", "Bob"), strict=True):
            await join_thread(bot, thread, nick)
        for n, text in enumerate(texts):
            await send_omemo_groupchat(bots[n % 2], thread, text)
            for inbox in inboxes:
                [got] = await inbox.take(1, timeout=60)
                assert got.body == text
        assert all(not inbox.failures for inbox in inboxes)
        return [[seq_of(copy) for copy in inbox.received] for inbox in inboxes]
    finally:
        await asyncio.gather(*(disconnect_bot(bot) for bot in bots))


async def test_sequence_survives_a_restart_live_and_in_mam_and_a_deleted_row_is_a_gap(
    make_users: MakeUsers, restartable: Restartable
) -> None:
    gw = await restartable.start()
    users = make_users("alice", "bob")
    thread = await acreate_thread(gw, "ward7", users)
    storages = [MemoryStorage(), MemoryStorage()]  # the same devices before and after
    before = await talk(users, storages, gw, thread, ["BP 120/80", "K+ 4.1", "Hb 13.2"])
    gw = await restartable.restart()
    after = await talk(users, storages, gw, thread, ["ECG normal", "discharge at 3"])

    live = [b + a for b, a in zip(before, after, strict=True)]
    assert live[0] == live[1]  # both members saw the same numbers
    assert len(live[0]) == 5 and strictly_increasing(live[0]), live[0]
    assert max(before[0]) < min(after[0])  # no number reused after the restart

    reader = await connect_omemo_bot(users[1], PASSWORD, gw.server, storage=storages[1])
    try:
        archived = await fetch_thread_history(reader, thread)
    finally:
        await disconnect_bot(reader)
    assert [seq_of(m.xml) for m in archived] == live[0]

    assert (await gw.acli("audit", "verify")).returncode == 0
    await restartable.stop()  # nobody writes while the row is removed
    missing = live[0][1]
    database = make_url(gw.settings.store.url).database
    assert database is not None
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        deleted = db.execute(
            "DELETE FROM thread_messages WHERE seq = ? AND thread_id = "
            "(SELECT id FROM threads WHERE name = ?)",
            (missing, "ward7"),
        ).rowcount
    assert deleted == 1
    verified = await gw.acli("audit", "verify", check=False)
    assert verified.returncode == 1, verified.stdout
    assert f"message archive of thread ward7 BROKEN at message {missing}" in verified.stdout
