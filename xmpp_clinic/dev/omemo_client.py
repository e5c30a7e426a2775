"""A legacy OMEMO client for the demo's phones and the tests' bots (slixmpp-omemo).

slixmpp-omemo speaks legacy OMEMO (``eu.siacs.conversations.axolotl``), as Conversations,
Gajim and Dino do. Here it keeps its keys in memory (:class:`MemoryStorage`; hand the same
storage to the next login to keep the device and its sessions) and trusts blindly
before verification (BTBV). Importing this module registers the plugin as ``xep_0384``.

Development only: plaintext c2s on loopback, keys in memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation, JSONType
from slixmpp import ClientXMPP
from slixmpp.plugins import register_plugin
from slixmpp_omemo import XEP_0384, TrustLevel

from .bots import connect_bot, disconnect_bot
from .servers import DevServer

log = logging.getLogger(__name__)

OMEMO_PLUGINS = (
    "xep_0004", "xep_0030", "xep_0045", "xep_0059", "xep_0060", "xep_0163", "xep_0199",
    "xep_0280", "xep_0297", "xep_0313", "xep_0334", "xep_0359", "xep_0421",
)  # fmt: skip
OMEMO_START_TIMEOUT = 60.0  # ejabberd refuses publish-options, slixmpp-omemo retries
FALLBACK_BODY = "This message is OMEMO encrypted."


class MemoryStorage(Storage):
    """python-omemo storage in a dict; hand it to the next login to keep the device."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, JSONType] = {}

    async def _load(self, key: str) -> Maybe[JSONType]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: JSONType) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class BlindTrustOmemo(XEP_0384):
    """slixmpp-omemo with in-memory storage (config ``storage``) and blind trust (BTBV)."""

    name = "xep_0384"
    default_config = {"fallback_message": FALLBACK_BODY, "storage": None}

    def plugin_init(self) -> None:
        if self.config.get("storage") is None:
            self.config["storage"] = MemoryStorage()
        super().plugin_init()

    @property
    def storage(self) -> Storage:
        return cast(Storage, self.config["storage"])

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        return None

    async def _prompt_manual_trust(
        self, manually_trusted: frozenset[DeviceInformation], identifier: str | None
    ) -> None:
        session_manager = await self.get_session_manager()
        for device in manually_trusted:
            await session_manager.set_trust(
                device.bare_jid, device.identity_key, TrustLevel.TRUSTED.value
            )


register_plugin(BlindTrustOmemo)


@dataclass(frozen=True)
class OwnDevice:
    """A client's own OMEMO device, as its settings screen shows it."""

    device_id: int
    fingerprint: str  # 64 hex digits, Curve25519 form (what the registry stores)


def omemo_of(client: ClientXMPP) -> BlindTrustOmemo:
    """The client's OMEMO plugin (registered by :func:`connect_omemo`)."""
    plugins: Mapping[str, object] = client.plugin
    return cast(BlindTrustOmemo, plugins["xep_0384"])


async def connect_omemo(
    jid: str,
    password: str,
    server: DevServer,
    *,
    storage: MemoryStorage,
    attempts: int = 3,
    timeout: float = OMEMO_START_TIMEOUT,
) -> ClientXMPP:
    """Log in with OMEMO; return once the device's bundle and device list are published.

    ejabberd 23.01 sometimes answers the very first PEP publish of a fresh account with
    item-not-found; a new login then succeeds, so the login is retried (same storage,
    same device). Raises :class:`~xmpp_clinic.dev.bots.BotLoginError` when the login
    fails, or the last start-up error of the OMEMO plugin.
    """
    for attempt in range(1, attempts + 1):
        client = await connect_bot(jid, password, server, plugins=OMEMO_PLUGINS)
        client.use_message_ids = True  # slixmpp-omemo recognises reflections by id
        client.register_plugin("xep_0384", {"storage": storage})
        try:  # registered after session start: this awaits the plugin's own start-up
            await asyncio.wait_for(omemo_of(client).get_session_manager(), timeout)
        except Exception as exc:
            await disconnect_bot(client)
            if attempt == attempts:
                raise
            log.warning("OMEMO start-up failed (%s); logging in again", type(exc).__name__)
            continue
        return client
    raise AssertionError("unreachable: the last attempt returns or raises")


async def own_device(client: ClientXMPP) -> OwnDevice:
    """The legacy OMEMO device ``client`` published, with its fingerprint."""
    session_manager = await omemo_of(client).get_session_manager()
    device, _others = await session_manager.get_own_device_information()
    digits = "".join(session_manager.format_identity_key(device.identity_key)).lower()
    return OwnDevice(int(device.device_id), digits)
