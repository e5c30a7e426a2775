"""The documentation member on a real Prosody and a real ejabberd (I.6, II.1, I.12).

Two slixmpp-omemo clients (legacy OMEMO) and one OMEMO 2 device (python-omemo's twomemo,
sent by a plain client) write in a documented thread. They read the records member's
device list and bundle from the gateway like any member's, encrypt for it, and
``records show`` prints what they wrote, in order, with sender and time, while the
database holds none of it in the clear. A client that leaves the records device out is
relayed, its gap recorded and told; after ``set-documented off`` nothing is decrypted;
after a restart the sessions still decrypt; without its key file the gateway refuses to
start. A message only the records device could read is refused with the fix (photos:
``test_records_attach.py``). The gateways run with ``policy.device_approval = "all"``
(device approval is tested elsewhere). The wiring below is the one app.py is asked to
adopt (see ``xmpp/records_member.py``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import twomemo.etree
from slixmpp import JID, ClientXMPP

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.helpers.omemo import OmemoInbox, connect_omemo_bot, join_thread, thread_members
from tests.helpers.twomemo import NAMESPACE, Directory, OmemoTwoDevice, publish
from tests.integration.conftest import PASSWORD, GatewayHandle, write_config
from tests.integration.device_policy_helpers import Notices, Refusals
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.omemo_client import omemo_of
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.policy.verdict import ReasonCode
from xmpp_clinic.records.documentation import DocumentedMessage
from xmpp_clinic.records.keys import RecordsKeyError
from xmpp_clinic.xmpp.records_gate import GAP_NOTICE, ONLY_RECORDS_TEXT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ALL_DEVICES = {"device_approval": "all"}
PLAIN_PLUGINS = ("xep_0030", "xep_0045", "xep_0060")


class Documenting:
    """A gateway with its records member, as ``xmpp-clinic run`` builds it."""

    def __init__(self, server: DevServer, folder: Path, **sections: dict[str, Any]) -> None:
        self.folder = folder
        self.path = write_config(server, folder, policy=ALL_DEVICES, **sections)
        self.settings = load_settings(self.path)
        self.gateway = Gateway(self.settings)  # as `xmpp-clinic run` builds it
        self.part = self.gateway.records
        self.handle = GatewayHandle(self.gateway, self.settings, self.path, server)

    async def start(self) -> None:
        await self.gateway.start()
        await self.gateway.component.wait_online(timeout=15)

    async def stop(self) -> None:
        await self.gateway.stop()

    async def copies(self, thread: str) -> list[DocumentedMessage]:
        assert self.part.member is not None
        return await self.part.member.documentation.read(thread)

    async def wait_copies(
        self, thread: str, count: int, timeout: float = 60
    ) -> list[DocumentedMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = await self.copies(thread)
            if len(found) >= count or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.2)

    def database(self) -> Path:
        return Path(self.settings.store.url.split("///", 1)[1])


@pytest.fixture
async def documenting(
    xmpp_server: DevServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Documenting]]:
    made: list[Documenting] = []

    def make(**sections: dict[str, Any]) -> Documenting:
        folder = tmp_path / "gw"
        folder.mkdir(exist_ok=True)
        made.append(Documenting(xmpp_server, folder, **sections))
        return made[-1]

    yield make
    for gw in reversed(made):
        if gw.part.member is not None:
            await gw.stop()


async def learn(bot: ClientXMPP, directory: Directory, jid: str) -> None:
    """Read ``jid``'s OMEMO 2 device list and bundles from PEP into ``directory``, as an
    OMEMO 2 client does before encrypting (for the records member: from the gateway)."""
    pubsub: Any = bot.plugin["xep_0060"]
    listing = await pubsub.get_items(JID(jid), "urn:xmpp:omemo:2:devices", timeout=20)
    devices = twomemo.etree.parse_device_list(listing["pubsub"]["items"]["substanzas"][0].xml[0])
    directory.device_lists[(NAMESPACE, jid)] = devices
    for device_id in devices:
        answer = await pubsub.get_items(
            JID(jid), "urn:xmpp:omemo:2:bundles", item_ids=[str(device_id)], timeout=20
        )
        element = answer["pubsub"]["items"]["substanzas"][0].xml[0]
        directory.bundles[(NAMESPACE, jid, device_id)] = twomemo.etree.parse_bundle(
            element, jid, device_id
        )


async def omemo2_member(
    server: DevServer, jid: str, others: list[str]
) -> tuple[ClientXMPP, OmemoTwoDevice, Directory]:
    """Kai's OMEMO 2 device, published to PEP, knowing the others' devices from PEP."""
    bot = await connect_bot(jid, PASSWORD, server, plugins=PLAIN_PLUGINS)
    directory = Directory()
    device = await OmemoTwoDevice.create(jid, directory)
    await publish(bot, device)
    for other in others:
        await learn(bot, directory, other)
    return bot, device, directory


async def send_legacy(bot: ClientXMPP, thread: str, text: str, to: list[str]) -> str:
    """Encrypt for ``to`` only (Kai has no legacy device: a mixed-version thread); the id."""
    message = bot.make_message(mto=JID(thread), mtype="groupchat")
    message["body"] = text
    encrypted, _errors = await omemo_of(bot).encrypt_message(message, {JID(j) for j in to})
    assert encrypted is not None
    encrypted["id"] = message_id = bot.new_id()
    encrypted.send()
    return message_id


async def send_omemo2(
    bot: ClientXMPP, device: OmemoTwoDevice, thread: str, text: str, to: list[str]
) -> None:
    element = await device.encrypt(text, to)
    message = bot.make_message(mto=thread, mtype="groupchat")
    message.append(element)
    message.send()


@pytest.mark.requirement("I.6", "II.1")
async def test_documented_thread_is_recorded_exactly_and_only_encrypted(
    xmpp_server: DevServer,
    make_users: Callable[..., list[str]],
    documenting: Callable[[], Documenting],
) -> None:
    gw = documenting()
    await gw.start()
    anna, ben, kai = make_users("anna", "ben", "kai")
    records = gw.part.jid
    await gw.handle.acli("threads", "create", "icu", "--title", "ICU", "--member", anna,
              "--member", ben, "--member", kai, "--documented")  # fmt: skip
    thread = f"icu@{gw.handle.jid}"
    bots = list(
        await asyncio.gather(*(connect_omemo_bot(u, PASSWORD, xmpp_server) for u in (anna, ben)))
    )
    kai_bot, kai_device, _ = await omemo2_member(xmpp_server, kai, [records, anna, ben])
    try:
        for bot, nick in ((bots[0], "Anna"), (bots[1], "Ben"), (kai_bot, "Kai")):
            await join_thread(bot, thread, nick)
        ben_inbox = OmemoInbox(bots[1])
        refusals = Refusals(kai_bot)
        said = [
            (anna, "BP 120/80 at 08:00"),
            (kai, "Pulse 64, Kai"),
            (ben, "Started heparin 5000 IE"),
        ]
        for count, (who, text) in enumerate(said, start=1):
            if who == kai:
                sent_id = await send_omemo2(kai_bot, kai_device, thread, text, [records, anna, ben])
                if refusals.has(sent_id) or len(await gw.wait_copies("icu", count, 40)) < count:
                    raise AssertionError(await refusals.of(sent_id, 5))
            else:
                other = ben if who == anna else anna
                await send_legacy(
                    bots[0] if who == anna else bots[1], thread, text, [other, records]
                )
            assert len(await gw.wait_copies("icu", count)) == count, (
                f"message {count} not documented"
            )
        shown = (await gw.handle.acli("records", "show", "icu")).stdout.splitlines()
        assert [tuple(line.split("\t")[1:]) for line in shown] == said
        # The database holds none of it in the clear: every table, every file.
        db = sqlite3.connect(gw.database())
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in db.execute(f'select * from "{table}"'):
                for _who, text in said:
                    assert text not in repr(row), table
        db.close()
        for path in gw.database().parent.glob(gw.database().name + "*"):
            for _who, text in said:
                assert text.encode() not in path.read_bytes(), path

        # Leaving the records device out: relayed, the gap recorded, the sender told.
        notices = Notices(bots[0], thread)
        gateway_notices = Notices(bots[0], gw.handle.jid)
        await send_legacy(bots[0], thread, "no records key", [ben])
        copies = await gw.wait_copies("icu", 4)
        assert (copies[3].kind, copies[3].sender) == ("gap", anna)
        found = await asyncio.wait_for(_any_notice(notices, gateway_notices), 30)
        assert found == GAP_NOTICE

        # Off: the member leaves (every client's member list), the room is told, and
        # later messages are not decrypted.
        assert records in await thread_members(bots[0], thread)
        await gw.handle.acli("threads", "set-documented", "icu", "off")
        await notices.containing("no longer documented in the patient record", timeout=30)
        assert records not in await thread_members(bots[0], thread)
        await send_legacy(bots[0], thread, "after documentation ended", [ben, records])
        while True:  # ben reads everything; the last one is the message after "off"
            got = await ben_inbox.take(1, timeout=60)
            if got[0].body == "after documentation ended":
                break
        assert len(await gw.copies("icu")) == 4
    finally:
        await asyncio.gather(*(disconnect_bot(b) for b in (*bots, kai_bot)))


async def _any_notice(*sources: Notices) -> str:
    while True:
        for source in sources:
            for body in source.bodies:
                if "documentation service" in body:
                    return body
        await asyncio.sleep(0.2)


@pytest.mark.requirement("I.6", "I.12")
async def test_sessions_survive_a_restart_and_a_lost_key_stops_the_gateway(
    xmpp_server: DevServer,
    make_users: Callable[..., list[str]],
    documenting: Callable[[], Documenting],
) -> None:
    gw = documenting()
    await gw.start()
    anna, ben = make_users("anna", "ben")
    await gw.handle.acli("threads", "create", "ward", "--title", "Ward", "--member", anna,
              "--member", ben, "--documented")  # fmt: skip
    thread = f"ward@{gw.handle.jid}"
    bot, _ben_bot = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, xmpp_server) for u in (anna, ben))
    )
    try:
        await join_thread(bot, thread, "Anna")
        await send_legacy(bot, thread, "before restart", [ben, gw.part.jid])
        assert len(await gw.wait_copies("ward", 1)) == 1
        await gw.stop()
        again = documenting()
        await again.start()
        await join_thread(bot, thread, "Anna")
        await send_legacy(bot, thread, "after restart", [ben, again.part.jid])
        copies = await again.wait_copies("ward", 2)
        assert [c.body for c in copies] == ["before restart", "after restart"]
        await again.stop()
    finally:
        await asyncio.gather(disconnect_bot(bot), disconnect_bot(_ben_bot))
    key = gw.settings.records.key_file
    key.unlink()
    lost = documenting()
    with pytest.raises(RecordsKeyError) as refused:
        await lost.start()
    assert "[records] key_file" in str(refused.value) and str(key) in str(refused.value)
    assert not key.exists()
    await lost.gateway.store.close()


@pytest.mark.requirement("I.6", "II.2")
async def test_message_only_for_the_records_device_is_refused_with_the_fix(
    xmpp_server: DevServer,
    make_users: Callable[..., list[str]],
    documenting: Callable[..., Documenting],
) -> None:
    """A client that knows only the documentation service's device: no member could read
    the message, so it is refused (the app keeps it to resend), neither relayed nor
    documented, and the error says what to do."""
    gw = documenting()
    await gw.start()
    anna, ben = make_users("anna", "ben")
    await gw.handle.acli("threads", "create", "ward", "--title", "Ward", "--member", anna,
              "--member", ben, "--documented")  # fmt: skip
    thread = f"ward@{gw.handle.jid}"
    bot, ben_bot = await asyncio.gather(
        *(connect_omemo_bot(u, PASSWORD, xmpp_server) for u in (anna, ben))
    )
    try:
        await join_thread(bot, thread, "Anna")
        await join_thread(ben_bot, thread, "Ben")
        ben_inbox = OmemoInbox(ben_bot)
        refusals = Refusals(bot)
        sent_id = await send_legacy(bot, thread, "only the record", [gw.part.jid])
        refusal = await refusals.of(sent_id, 30)
        assert refusal.reason == ReasonCode.NO_APPROVED_RECIPIENT.value
        assert refusal.text == ONLY_RECORDS_TEXT
        await send_legacy(bot, thread, "for everyone", [ben, gw.part.jid])
        [got] = await ben_inbox.take(1, timeout=60)
        assert got.body == "for everyone"  # the refused one never reached Ben
        assert [c.body for c in await gw.wait_copies("ward", 1)] == ["for everyone"]
    finally:
        await asyncio.gather(disconnect_bot(bot), disconnect_bot(ben_bot))
