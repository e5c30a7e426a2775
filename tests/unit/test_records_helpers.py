"""In-process OMEMO senders (legacy and OMEMO 2) that encrypt to the records device.

python-omemo SessionManagers of test persons publish into the twomemo helper's
in-memory :class:`~tests.helpers.twomemo.Directory`; the records device reads that
directory through :class:`DirectoryAdapter` as it reads PEP on a running gateway.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree

from tests.helpers.twomemo import Directory, _session_manager_class, sce_envelope
from xmpp_clinic.dev.omemo_client import MemoryStorage
from xmpp_clinic.omemo import LEGACY, OMEMO2, Namespace
from xmpp_clinic.records.identity import RecordsDevice


class DirectoryAdapter:
    """The test directory as the records device's PublicDirectory (serialised elements)."""

    def __init__(self, directory: Directory) -> None:
        self.directory = directory

    async def device_list(self, version: Namespace, jid: str) -> ET.Element | None:
        listing = self.directory.device_lists.get((version.uri, jid))
        if listing is None:
            return None
        if version is LEGACY:
            return oldmemo.etree.serialize_device_list(listing)
        return twomemo.etree.serialize_device_list(listing)

    async def bundle(self, version: Namespace, jid: str, device_id: int) -> ET.Element | None:
        bundle: Any = self.directory.bundles.get((version.uri, jid, device_id))
        if bundle is None:
            return None
        if version is LEGACY:
            return oldmemo.etree.serialize_bundle(bundle)
        return twomemo.etree.serialize_bundle(bundle)


async def announce(records: RecordsDevice, directory: Directory) -> None:
    """Put the records device's published list and bundles where senders look."""
    device_id = await records.device_id()
    for version in (LEGACY, OMEMO2):
        parse: Any = oldmemo.etree if version is LEGACY else twomemo.etree
        directory.device_lists[(version.uri, records.jid)] = {device_id: None}
        bundle = parse.parse_bundle(await records.bundle(version), records.jid, device_id)
        directory.bundles[(version.uri, records.jid, device_id)] = bundle


class Sender:
    """A person's device of one OMEMO version, encrypting in-process."""

    def __init__(self, jid: str, version: Namespace, manager: Any) -> None:
        self.jid, self.version, self.manager = jid, version, manager

    @classmethod
    async def create(cls, jid: str, version: Namespace, directory: Directory) -> Sender:
        storage = MemoryStorage()
        backend: Any = oldmemo.Oldmemo(storage) if version is LEGACY else twomemo.Twomemo(storage)
        manager = await _session_manager_class(directory, jid).create(
            [backend], storage, jid, None, "undecided"
        )
        return cls(jid, version, manager)

    async def device_id(self) -> int:
        own, _ = await self.manager.get_own_device_information()
        return int(own.device_id)

    async def encrypt(self, body: str, recipients: list[str]) -> ET.Element:
        """The ``<encrypted>`` element carrying ``body`` for ``recipients``' devices."""
        for recipient in recipients:
            await self.manager.refresh_device_lists(recipient)
        plain = body.encode() if self.version is LEGACY else sce_envelope(body, self.jid)
        messages, errors = await self.manager.encrypt(
            frozenset(recipients),
            {self.version.uri: plain},
            backend_priority_order=[self.version.uri],
        )
        if errors:
            raise RuntimeError(f"encryption failed: {errors!r}")
        [message] = list(messages)
        serialise: Any = oldmemo.etree if self.version is LEGACY else twomemo.etree
        element: ET.Element = serialise.serialize_message(message)
        return element
