"""What python-omemo really puts on the wire passes the strict checks (II.1, II.4).

The sizes in ``xmpp_clinic/omemo.py`` (Signal-message keys of 64+ bytes starting 0x33,
12-byte IVs, OMEMO 2 payloads of whole AES blocks) were read from OMEMO's definition;
here they meet real output of oldmemo (legacy OMEMO, what slixmpp-omemo, Gajim and
Conversations speak) and twomemo (OMEMO 2, what Kaidan speaks): key exchanges, messages
on an established session, key transport, and a one-letter message.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import oldmemo
import oldmemo.etree
import pytest
import twomemo
import twomemo.etree

from tests.helpers.twomemo import Directory, _session_manager_class, sce_envelope
from xmpp_clinic.dev.omemo_client import MemoryStorage
from xmpp_clinic.omemo import OmemoHeader, parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import Action

pytestmark = pytest.mark.requirement("II.1", "II.4")

ALICE, BOB = "alice@h.test", "bob@h.test"


async def device(jid: str, directory: Directory, backend: Any) -> Any:
    storage = MemoryStorage()
    manager_class = _session_manager_class(directory, jid)
    return await manager_class.create([backend(storage)], storage, jid, None, "undecided")


async def encrypt(sender: Any, recipient: str, namespace: str, plaintext: bytes) -> ET.Element:
    await sender.refresh_device_lists(recipient)
    messages, _ = await sender.encrypt(
        frozenset([recipient]), {namespace: plaintext}, backend_priority_order=[namespace]
    )
    [message] = messages
    etree = oldmemo.etree if namespace == oldmemo.oldmemo.NAMESPACE else twomemo.etree
    element: ET.Element = etree.serialize_message(message)
    return element


def passes(encrypted: ET.Element) -> bool:
    """The element as a groupchat message with a client's fallback body: read and kept."""
    message = ET.Element("{jabber:client}message", {"type": "groupchat", "id": "m1"})
    message.append(encrypted)
    ET.SubElement(message, "{jabber:client}body").text = "This message is OMEMO encrypted."
    header = parse_header(message)
    verdict = check_e2e(message, header)
    return isinstance(header, OmemoHeader) and verdict.action is Action.MODIFY


async def test_legacy_omemo_from_oldmemo_passes() -> None:
    directory = Directory()
    alice = await device(ALICE, directory, oldmemo.Oldmemo)
    bob = await device(BOB, directory, oldmemo.Oldmemo)
    namespace = oldmemo.oldmemo.NAMESPACE
    first = await encrypt(alice, BOB, namespace, b"K+ 6.1, please review")  # key exchange
    assert passes(first)
    await bob.decrypt(await oldmemo.etree.parse_message(first, ALICE, BOB, bob))
    reply = await encrypt(bob, ALICE, namespace, b"x")  # established session, one byte
    assert passes(reply)
    assert passes(await encrypt(bob, ALICE, namespace, b""))  # key transport


async def test_omemo2_from_twomemo_passes() -> None:
    directory = Directory()
    alice = await device(ALICE, directory, twomemo.Twomemo)
    bob = await device(BOB, directory, twomemo.Twomemo)
    namespace = twomemo.twomemo.NAMESPACE
    first = await encrypt(alice, BOB, namespace, sce_envelope("K+ 6.1", ALICE))
    assert passes(first)
    await bob.decrypt(twomemo.etree.parse_message(first, ALICE))
    reply = await encrypt(bob, ALICE, namespace, sce_envelope("x", BOB))
    assert passes(reply)
