"""The records device: one OMEMO identity in both versions, kept in the store (I.6, II.1).

A python-omemo :class:`~omemo.SessionManager` with the oldmemo (legacy OMEMO 0.3) and
twomemo (OMEMO 2) backends, its state sealed by the key file (``storage.py``). What a
client publishes in PEP -- device lists and bundles -- the gateway serves from here
(``xmpp/records_pep.py``), computed fresh each time so that pre-keys used up by a
decryption are never offered again. Senders' public data is read from their PEP through
a :class:`PublicDirectory` the XMPP layer supplies.

Trust: the device registry already decided whether a sender's device may send (I.4); by
the time the records device decrypts, the policy has accepted the message, so every
device is trusted here. Empty OMEMO messages (session completion, staleness) are not
sent: the records member never writes to anyone; senders keep attaching their key
exchange until then, which python-omemo recognises as the session it already has.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Protocol

import oldmemo
import oldmemo.etree
import twomemo
import twomemo.etree
from omemo import SessionManager, TrustLevel
from omemo.bundle import Bundle
from omemo.message import Message as OmemoMessage
from omemo.session_manager import BundleDownloadFailed, DeviceListDownloadFailed
from omemo.types import DeviceInformation, DeviceList

from xmpp_clinic.omemo import LEGACY, OMEMO2, Namespace
from xmpp_clinic.records.keys import load_key
from xmpp_clinic.records.storage import SealedStorage, identity_exists
from xmpp_clinic.store import Store

log = logging.getLogger(__name__)

TRUSTED = "trusted"


class PublicDirectory(Protocol):
    """Other people's published OMEMO data (their PEP), as plain elements."""

    async def device_list(self, version: Namespace, jid: str) -> ET.Element | None:
        """The device-list payload (``<list>`` / ``<devices>``), None when there is none."""
        ...

    async def bundle(self, version: Namespace, jid: str, device_id: int) -> ET.Element | None:
        """The bundle payload of one device, None when there is none."""
        ...


class NoDirectory:
    """A directory with nothing in it (the CLI reads copies and never decrypts)."""

    async def device_list(self, version: Namespace, jid: str) -> ET.Element | None:
        return None

    async def bundle(self, version: Namespace, jid: str, device_id: int) -> ET.Element | None:
        return None


def _version(namespace: str) -> Namespace:
    return LEGACY if namespace == LEGACY.uri else OMEMO2


def _manager_class(
    own_jid: str, directory: PublicDirectory, own_list: DeviceList
) -> type[SessionManager]:
    """python-omemo's abstract I/O, answered for the records device (``own_list``: what
    it publishes about itself, filled once its device id is known)."""

    class RecordsSessionManager(SessionManager):
        @staticmethod
        async def _upload_bundle(bundle: Bundle) -> None:
            return None  # served fresh from the backends (records_pep.py)

        @staticmethod
        async def _download_bundle(namespace: str, bare_jid: str, device_id: int) -> Bundle:
            version = _version(namespace)
            payload = await directory.bundle(version, bare_jid, device_id)
            if payload is None:
                raise BundleDownloadFailed(f"no {version.short} bundle for device {device_id}")
            try:
                if version is LEGACY:
                    return oldmemo.etree.parse_bundle(payload, bare_jid, device_id)
                return twomemo.etree.parse_bundle(payload, bare_jid, device_id)
            except Exception as exc:
                raise BundleDownloadFailed(f"unreadable {version.short} bundle") from exc

        @staticmethod
        async def _delete_bundle(namespace: str, device_id: int) -> None:
            return None

        @staticmethod
        async def _upload_device_list(namespace: str, device_list: DeviceList) -> None:
            return None

        @staticmethod
        async def _download_device_list(namespace: str, bare_jid: str) -> DeviceList:
            if bare_jid == own_jid:
                return dict(own_list)
            version = _version(namespace)
            payload = await directory.device_list(version, bare_jid)
            if payload is None:
                return {}
            try:
                if version is LEGACY:
                    return oldmemo.etree.parse_device_list(payload)
                return twomemo.etree.parse_device_list(payload)
            except Exception as exc:
                raise DeviceListDownloadFailed(f"unreadable {version.short} device list") from exc

        async def _evaluate_custom_trust_level(self, device: DeviceInformation) -> TrustLevel:
            return TrustLevel.TRUSTED  # the device registry decided before (I.4)

        async def _make_trust_decision(
            self, undecided: frozenset[DeviceInformation], identifier: str | None
        ) -> None:
            return None

        @staticmethod
        async def _send_message(message: OmemoMessage, bare_jid: str) -> None:
            return None  # the records member never writes (see the module docstring)

    return RecordsSessionManager


class RecordsDevice:
    """The documentation member's OMEMO device, both versions, one device id (I.6)."""

    def __init__(self, jid: str, manager: SessionManager, backends: dict[str, Any]) -> None:
        self.jid = jid
        self.manager = manager
        self._backends = backends  # namespace URI -> python-omemo backend

    @classmethod
    async def open(
        cls, store: Store, key_file: Path, jid: str, directory: PublicDirectory
    ) -> tuple[RecordsDevice, bool]:
        """The device from the store (created on first use) and whether the key file was
        created now. A missing key file beside an existing identity is
        :class:`~xmpp_clinic.records.keys.RecordsKeyError` naming ``[records] key_file``."""
        key, created = load_key(key_file, identity_exists=await identity_exists(store))
        storage = SealedStorage(store, key)
        backends: dict[str, Any] = {
            LEGACY.uri: oldmemo.Oldmemo(storage),
            OMEMO2.uri: twomemo.Twomemo(storage),
        }
        own_list: DeviceList = {}
        manager = await _manager_class(jid, directory, own_list).create(
            list(backends.values()), storage, jid, None, TRUSTED
        )
        own, _others = await manager.get_own_device_information()
        own_list[own.device_id] = None
        await manager.after_history_sync()
        return cls(jid, manager, backends), created

    async def device_id(self) -> int:
        own, _others = await self.manager.get_own_device_information()
        return int(own.device_id)

    async def device_list(self, version: Namespace) -> ET.Element:
        """The device-list payload a client would publish for this version."""
        listing: DeviceList = {await self.device_id(): None}
        if version is LEGACY:
            return oldmemo.etree.serialize_device_list(listing)
        return twomemo.etree.serialize_device_list(listing)

    async def bundle(self, version: Namespace) -> ET.Element:
        """The current bundle payload (fresh pre-keys) for this version."""
        backend = self._backends[version.uri]
        bundle = await backend.get_bundle(self.jid, await self.device_id())
        if version is LEGACY:
            return oldmemo.etree.serialize_bundle(bundle)
        return twomemo.etree.serialize_bundle(bundle)

    async def decrypt(self, version: Namespace, encrypted: ET.Element, sender: str) -> bytes | None:
        """The plaintext of ``encrypted`` (the ``<encrypted>`` element) from ``sender``;
        None for a message without payload (key transport, ratchet upkeep). Raises
        python-omemo's errors, e.g. ``MessageNotForUs`` when no key is ours."""
        if version is LEGACY:
            message = await oldmemo.etree.parse_message(encrypted, sender, self.jid, self.manager)
        else:
            message = twomemo.etree.parse_message(encrypted, sender)
        plaintext, _device, _key = await self.manager.decrypt(message)
        return plaintext

    async def close(self) -> None:
        await self.manager.shutdown()
