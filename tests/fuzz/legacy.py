"""Legacy OMEMO (eu.siacs.conversations.axolotl) elements made in process.

The hostile cases about ``<iv>``, legacy key framing and the ``prekey`` flag need a real
legacy element to mutate (a fix may check the key's protobuf framing, so hand-made
base64 would not do). python-omemo's oldmemo backend makes one, with the same in-process
stand-in for PEP as tests/helpers/twomemo.py.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import oldmemo
import oldmemo.etree

from tests.helpers.twomemo import Directory, _session_manager_class
from xmpp_clinic.dev.omemo_client import MemoryStorage

LEGACY_NS = oldmemo.oldmemo.NAMESPACE


@dataclass
class LegacyDevice:
    """One legacy OMEMO device of ``jid`` whose bundle lives in a :class:`Directory`."""

    jid: str
    manager: Any

    @classmethod
    async def create(cls, jid: str, directory: Directory) -> LegacyDevice:
        storage = MemoryStorage()
        manager_class = _session_manager_class(directory, jid)
        manager = await manager_class.create(
            [oldmemo.Oldmemo(storage)], storage, jid, None, "undecided"
        )
        return cls(jid, manager)

    async def device(self) -> tuple[int, bytes]:
        """This device's id and identity key."""
        own, _others = await self.manager.get_own_device_information()
        return int(own.device_id), bytes(own.identity_key)

    async def encrypt(self, body: str, recipients: list[str]) -> ET.Element:
        """An ``<encrypted xmlns="eu.siacs.conversations.axolotl">`` for ``recipients``."""
        for recipient in recipients:
            await self.manager.refresh_device_lists(recipient)
        messages, errors = await self.manager.encrypt(
            frozenset(recipients), {LEGACY_NS: body.encode()}, backend_priority_order=[LEGACY_NS]
        )
        if errors:
            raise RuntimeError(f"legacy OMEMO encryption failed: {errors!r}")
        [message] = [m for m in messages if m.namespace == LEGACY_NS]
        element: ET.Element = oldmemo.etree.serialize_message(message)
        return element
