"""Read members' OMEMO device lists and bundles from their PEP (I.4, I.5).

A component may query a user's PEP with ``<iq type="get">`` to the user's bare JID
(XEP-0163); OMEMO clients publish their nodes with an open access model. What is found
goes to the registry: new devices become pending (or are approved per
``policy.device_approval``), devices gone from the list become inactive, and identity
keys (hence fingerprints) come from the bundles.

The XML parsing here is pure and tested with literal stanzas; :class:`ComponentPep` is
the thin slixmpp edge (xep_0060).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from xmpp_clinic import namespaces as ns
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.omemo import (
    MAX_DEVICE_ID,
    MIN_DEVICE_ID,
    VERSIONS,
    Namespace,
    device_id_or_none,
)
from xmpp_clinic.registry.fingerprint import BadIdentityKey, identity_key_from_bundle
from xmpp_clinic.registry.model import Device, ObservedDevice
from xmpp_clinic.registry.observation import MAX_LISTED_DEVICES
from xmpp_clinic.registry.service import DeviceRegistry

log = logging.getLogger(__name__)


class PepError(ValueError):
    """A device list or bundle that cannot be read."""


class PepUnavailable(Exception):
    """The PEP query failed (timeout, forbidden, ...): nothing is concluded from it."""


def parse_device_list(version: Namespace, payload: ET.Element | None) -> dict[int, str | None]:
    """Device ids (with OMEMO 2 labels) from a device-list item payload; None -> empty."""
    if payload is None:
        return {}
    if payload.tag != f"{{{version.uri}}}{version.list_element}":
        raise PepError(f"not an OMEMO device list: {payload.tag}")
    devices: dict[int, str | None] = {}
    for element in payload.iterfind(f"{{{version.uri}}}device"):
        device_id = device_id_or_none(element.get("id"))
        if device_id is None:
            raise PepError(f"a device id is not a number from {MIN_DEVICE_ID} to {MAX_DEVICE_ID}")
        label = element.get("label")
        devices[device_id] = label[:200] if label else None
        if len(devices) > MAX_LISTED_DEVICES:
            raise PepError(f"more than {MAX_LISTED_DEVICES} devices listed")
    return devices


def parse_bundle_identity(version: Namespace, payload: ET.Element | None) -> bytes:
    """The 32-byte identity key from a bundle item payload (see registry.fingerprint)."""
    if payload is None or payload.tag != f"{{{version.uri}}}bundle":
        raise PepError("not an OMEMO bundle")
    element = payload.find(f"{{{version.uri}}}{version.identity_element}")
    if element is None or not (element.text or "").strip():
        raise PepError("the bundle has no identity key")
    try:
        raw = base64.b64decode((element.text or "").strip(), validate=True)
        return identity_key_from_bundle(version.uri, raw)
    except (binascii.Error, BadIdentityKey) as exc:
        raise PepError(f"bad identity key: {exc}") from None


def items_of(result: ET.Element) -> list[ET.Element]:
    """The item payloads of a pubsub ``<iq type="result">`` (first child of each item)."""
    items = result.find(f"{{{ns.PUBSUB}}}pubsub/{{{ns.PUBSUB}}}items")
    if items is None:
        return []
    return [item[0] for item in items.iterfind(f"{{{ns.PUBSUB}}}item") if len(item)]


def error_condition(stanza: ET.Element) -> str:
    """The defined condition of an error stanza, whatever namespace the stream gave it.

    slixmpp parses ``<error>`` only in the namespace its Error stanza was registered
    with; a component stream delivers ``jabber:component:accept``, so read it directly.
    """
    for child in stanza:
        if child.tag.rsplit("}", 1)[-1] == "error":
            for condition in child:
                if condition.tag.startswith(f"{{{ns.STANZAS}}}") and not condition.tag.endswith(
                    "}text"
                ):
                    return condition.tag.rsplit("}", 1)[-1]
    return "undefined-condition"


class PepFetcher(Protocol):
    """Fetches item payloads of a user's PEP node; None when the node does not exist."""

    async def items(
        self, jid: str, node: str, item_id: str | None = None
    ) -> list[ET.Element] | None: ...


class ComponentPep:
    """PEP queries from the component through slixmpp's xep_0060 (the thin edge)."""

    def __init__(self, component: Any, timeout: float = 10.0) -> None:
        from slixmpp.exceptions import IqError, IqTimeout

        self._iq_error, self._iq_timeout = IqError, IqTimeout
        self._component = component
        self._timeout = timeout
        component.register_plugin("xep_0060")

    async def items(
        self, jid: str, node: str, item_id: str | None = None
    ) -> list[ET.Element] | None:
        pubsub = self._component.plugin["xep_0060"]
        try:
            iq = await pubsub.get_items(
                jid,
                node,
                item_ids=[item_id] if item_id is not None else None,
                max_items=None if item_id is not None else 1,
                ifrom=self._component.boundjid.bare,
                timeout=self._timeout,
            )
        except self._iq_timeout:
            raise PepUnavailable("timeout") from None
        except self._iq_error as exc:
            condition = error_condition(exc.iq.xml)
            if condition == "item-not-found":
                return None
            raise PepUnavailable(condition) from None
        return items_of(iq.xml)


@dataclass
class RefreshResult:
    """What one refresh of one person found."""

    jid: str
    listed: dict[str, int] = field(default_factory=dict)  # namespace -> devices listed
    failed: dict[str, str] = field(default_factory=dict)  # namespace -> why
    changed: list[Device] = field(default_factory=list)
    keyless: int = 0  # devices listed whose bundle could not be read (yet)


class DeviceDiscovery:
    """Keeps the registry in step with members' PEP (I.4): on join, on demand, periodically."""

    def __init__(
        self,
        fetcher: PepFetcher,
        registry: DeviceRegistry,
        *,
        refresh_seconds: float = 3600,
        concurrency: int = 8,
    ) -> None:
        self._fetcher = fetcher
        self._registry = registry
        self._interval = refresh_seconds
        self._slots = asyncio.Semaphore(concurrency)
        # One refresh of a person at a time: a join and an unknown sender device often
        # ask together, and two observations of one new device would collide.
        self._people: dict[str, asyncio.Lock] = {}

    async def refresh(self, jid: str) -> RefreshResult:
        """Fetch both device lists of ``jid`` and their bundles; record them."""
        bare = fast_bare(jid)
        # One lock per member ever refreshed: bounded by the hospital's directory.
        async with self._people.setdefault(bare, asyncio.Lock()):
            return await self._refresh(bare)

    async def _refresh(self, bare: str) -> RefreshResult:
        result = RefreshResult(bare)
        for version in VERSIONS:
            try:
                listing = await self._listing(bare, version)
            except (PepUnavailable, PepError) as exc:
                result.failed[version.uri] = str(exc) or type(exc).__name__
                continue
            result.listed[version.uri] = len(listing)
            result.keyless += sum(seen.identity_key is None for seen in listing.values())
            result.changed += await self._registry.observe(bare, version.uri, listing)
        return result

    async def _listing(self, jid: str, version: Namespace) -> dict[int, ObservedDevice]:
        async with self._slots:
            payloads = await self._fetcher.items(jid, version.device_list_node)
        devices = parse_device_list(version, payloads[0] if payloads else None)
        keys = await asyncio.gather(*(self._identity(jid, version, d) for d in devices))
        return {
            device_id: ObservedDevice(label, key)
            for (device_id, label), key in zip(devices.items(), keys, strict=True)
        }

    async def _identity(self, jid: str, version: Namespace, device_id: int) -> bytes | None:
        node, item_id = version.bundle_node(device_id)
        try:
            async with self._slots:
                payloads = await self._fetcher.items(jid, node, item_id)
            return parse_bundle_identity(version, payloads[0] if payloads else None)
        except (PepUnavailable, PepError) as exc:
            log.info("bundle not readable", extra={"device": device_id, "why": str(exc)})
            return None

    async def refresh_many(self, jids: Iterable[str]) -> list[RefreshResult]:
        return list(await asyncio.gather(*(self.refresh(jid) for jid in set(jids))))

    async def run_periodic(
        self,
        members: Callable[[], Awaitable[Iterable[str]]],
        *,
        after_round: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Every ``policy.device_refresh_seconds``: refresh all members, then apply expiry.

        ``after_round`` runs after each round, also after a failed one (the gateway sends
        the notices the round queued, I.5).
        """
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh_many(await members())
                await self._registry.expire_due()
            except Exception:
                log.exception("periodic device refresh failed; trying again next round")
            if after_round is not None:
                try:
                    await after_round()
                except Exception:
                    log.exception("work after the periodic device refresh failed")
