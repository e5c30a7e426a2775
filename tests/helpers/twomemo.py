"""OMEMO 2 (urn:xmpp:omemo:2) messages built with python-omemo's twomemo backend.

slixmpp-omemo only sends legacy OMEMO; Kaidan sends OMEMO 2. To put a real OMEMO 2
``<encrypted>`` element on the wire, this module runs python-omemo SessionManagers in the
test process that publish their bundles and device lists to an in-memory
:class:`Directory`; :func:`publish` also puts a device's list and bundle into real PEP
(ejabberd 23.01 keeps several bundle items only with the devserver's node config). The
element is then sent by an ordinary bot.

>>> directory = Directory()                                           # doctest: +SKIP
>>> kai = await OmemoTwoDevice.create("kai@h.test", directory)
>>> bob = await OmemoTwoDevice.create("bob@h.test", directory)
>>> element = await kai.encrypt("BP 120/80", ["bob@h.test"])  # <encrypted xmlns=...omemo:2>
>>> await bob.decrypt(element, "kai@h.test")
'BP 120/80'

To test the gateway's discovery from PEP, :func:`publish` also puts a device's device list
and bundle into its owner's real PEP, as an OMEMO 2 client does (XEP-0384 v0.8).
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import twomemo
import twomemo.etree
from omemo import SessionManager, TrustLevel
from omemo.bundle import Bundle
from omemo.message import Message as OmemoMessage
from omemo.types import DeviceInformation, DeviceList
from slixmpp import JID, ClientXMPP
from slixmpp.exceptions import IqError
from slixmpp.plugins.xep_0004 import Form

from xmpp_clinic.dev.omemo_client import MemoryStorage
from xmpp_clinic.omemo import OMEMO2

NAMESPACE = twomemo.twomemo.NAMESPACE
SCE_NS = "urn:xmpp:sce:1"
DEVICE_LIST_NODE = OMEMO2.device_list_node
BUNDLES_NODE, _ITEM = OMEMO2.bundle_node(0)
PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options"


@dataclass
class Directory:
    """Stands in for PEP: bundles and device lists by (namespace, bare JID)."""

    bundles: dict[tuple[str, str, int], Bundle] = field(default_factory=dict)
    device_lists: dict[tuple[str, str], DeviceList] = field(default_factory=dict)


def _session_manager_class(directory: Directory, own_jid: str) -> type[SessionManager]:
    class InProcessSessionManager(SessionManager):
        @staticmethod
        async def _upload_bundle(bundle: Bundle) -> None:
            directory.bundles[(bundle.namespace, bundle.bare_jid, bundle.device_id)] = bundle

        @staticmethod
        async def _download_bundle(namespace: str, bare_jid: str, device_id: int) -> Bundle:
            return directory.bundles[(namespace, bare_jid, device_id)]

        @staticmethod
        async def _delete_bundle(namespace: str, device_id: int) -> None:
            directory.bundles.pop((namespace, own_jid, device_id), None)

        @staticmethod
        async def _upload_device_list(namespace: str, device_list: DeviceList) -> None:
            directory.device_lists[(namespace, own_jid)] = dict(device_list)

        @staticmethod
        async def _download_device_list(namespace: str, bare_jid: str) -> DeviceList:
            return dict(directory.device_lists.get((namespace, bare_jid), {}))

        async def _evaluate_custom_trust_level(self, device: DeviceInformation) -> TrustLevel:
            return TrustLevel.TRUSTED  # tests trust every device

        async def _make_trust_decision(
            self, undecided: frozenset[DeviceInformation], identifier: str | None
        ) -> None:
            return None

        @staticmethod
        async def _send_message(message: OmemoMessage, bare_jid: str) -> None:
            return None  # heartbeats are not needed in these tests

    return InProcessSessionManager


def sce_envelope(body: str, sender: str) -> bytes:
    """A minimal XEP-0420 envelope carrying ``body`` (what OMEMO 2 encrypts)."""
    envelope = ET.Element(f"{{{SCE_NS}}}envelope")
    content = ET.SubElement(envelope, f"{{{SCE_NS}}}content")
    ET.SubElement(content, "{jabber:client}body").text = body
    ET.SubElement(envelope, f"{{{SCE_NS}}}rpad").text = secrets.token_hex(8)
    ET.SubElement(envelope, f"{{{SCE_NS}}}from", {"jid": sender})
    return ET.tostring(envelope)


def body_of(envelope: bytes) -> str:
    """The body inside an SCE envelope."""
    found = ET.fromstring(envelope).find(f"{{{SCE_NS}}}content/{{jabber:client}}body")
    return found.text or "" if found is not None else ""


@dataclass
class OmemoTwoDevice:
    """One OMEMO 2 device of ``jid`` whose public data lives in ``directory``."""

    jid: str
    manager: Any
    directory: Directory | None = field(default=None, repr=False)  # set by create()

    @classmethod
    async def create(cls, jid: str, directory: Directory) -> OmemoTwoDevice:
        storage = MemoryStorage()
        manager_class = _session_manager_class(directory, jid)
        manager = await manager_class.create(
            [twomemo.Twomemo(storage)], storage, jid, None, "undecided"
        )
        return cls(jid, manager, directory)

    async def device(self) -> tuple[int, bytes]:
        """This device's id and its identity key as published (Ed25519 for OMEMO 2)."""
        own, _others = await self.manager.get_own_device_information()
        return int(own.device_id), bytes(own.identity_key)

    async def encrypt(self, body: str, recipients: list[str]) -> ET.Element:
        """An ``<encrypted xmlns="urn:xmpp:omemo:2">`` element for ``recipients``' devices."""
        for recipient in recipients:  # their devices may be newer than our cached lists
            await self.manager.refresh_device_lists(recipient)
        messages, errors = await self.manager.encrypt(
            frozenset(recipients),
            {NAMESPACE: sce_envelope(body, self.jid)},
            backend_priority_order=[NAMESPACE],
        )
        if errors:
            raise RuntimeError(f"OMEMO 2 encryption failed: {errors!r}")
        [message] = [m for m in messages if m.namespace == NAMESPACE]
        element: ET.Element = twomemo.etree.serialize_message(message)
        return element

    async def decrypt(self, element: ET.Element, sender: str) -> str:
        """The body of an OMEMO 2 element sent by ``sender`` to this device."""
        message = twomemo.etree.parse_message(element, sender)
        plaintext, _device, _key = await self.manager.decrypt(message)
        return body_of(plaintext or b"")


async def publish(bot: ClientXMPP, device: OmemoTwoDevice, timeout: float = 20) -> int:
    """Publish ``device``'s OMEMO 2 device list and bundle to PEP as ``bot``; its id.

    ``bot`` is logged in as the device's owner with slixmpp's ``xep_0060`` plugin. As
    XEP-0384 v0.8 (and slixmpp-omemo) do, the device list ``<devices
    xmlns="urn:xmpp:omemo:2">`` -- every device of the owner in the device's
    :class:`Directory` -- goes to ``urn:xmpp:omemo:2:devices`` as item ``current``, and the
    bundle to ``urn:xmpp:omemo:2:bundles`` as item ``<device id>``, both with the open
    access model, serialised by python-omemo itself. They ask for ``pubsub#max_items`` 1
    (list) and ``max`` (bundles); a server that refuses that option (ejabberd 23.01
    answers resource-constraint) is asked again without it, and the dev server's
    ``force_node_config`` keeps up to 1000 bundles there.
    Raises slixmpp's IqError with the server's error when a publish is refused.
    """
    if device.directory is None:
        raise ValueError("the device has no directory: make it with OmemoTwoDevice.create")
    device_id, _identity_key = await device.device()
    device_list = device.directory.device_lists.get((NAMESPACE, device.jid), {device_id: None})
    bundle = device.directory.bundles[(NAMESPACE, device.jid, device_id)]
    assert isinstance(bundle, twomemo.twomemo.BundleImpl)  # uploaded by the twomemo backend
    await _publish(
        bot,
        DEVICE_LIST_NODE,
        "current",
        twomemo.etree.serialize_device_list(device_list),
        "1",
        timeout,
    )
    await _publish(
        bot, BUNDLES_NODE, str(device_id), twomemo.etree.serialize_bundle(bundle), "max", timeout
    )
    return device_id


async def _publish(
    bot: ClientXMPP, node: str, item_id: str, payload: ET.Element, max_items: str, timeout: float
) -> None:
    """Publish one open item; without ``pubsub#max_items`` where the server refuses it."""
    options = {"pubsub#access_model": "open", "pubsub#persist_items": "true"}
    pubsub: Any = bot.plugin["xep_0060"]  # slixmpp's plugins are untyped
    for extra in ({"pubsub#max_items": max_items}, {}):
        try:
            await pubsub.publish(
                JID(bot.boundjid.bare),
                node,
                id=item_id,
                payload=payload,
                options=_options_form({**options, **extra}),
                timeout=timeout,
            )
            return
        except IqError:
            if not extra:
                raise


def _options_form(fields: dict[str, str]) -> Any:
    """A submitted publish-options data form (slixmpp's Form is untyped)."""
    make_form: Any = Form
    form = make_form()
    form["type"] = "submit"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=PUBLISH_OPTIONS)
    for var, value in fields.items():
        form.add_field(var=var, value=value)
    return form
