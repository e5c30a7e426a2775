"""The bridge as one service the gateway starts and stops (I.6).

``[bridge] enabled``: the HTTP API on ``[bridge] listen``; ``[bridge.hl7] host``: the MDM
outbox delivers there (and, with ``push_interval_minutes``, queues what documented
threads wrote since their last push on that schedule); ``[bridge.adt] listen``: the ADT
listener, opening case threads on the wards of ``ward_threads``. A discharge (A03)
queues the transcript of each closed, documented thread for the HIS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from xmpp_clinic.bridge.adt_listener import ACTOR, AdtListener
from xmpp_clinic.bridge.api import BridgeContext
from xmpp_clinic.bridge.http import HttpBridge
from xmpp_clinic.bridge.outbox import Outbox, schedule
from xmpp_clinic.bridge.records import DocumentationCopies
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.store import Store

log = logging.getLogger(__name__)


class BridgeService:
    """HTTP API, MDM outbox and ADT listener over one store."""

    def __init__(self, settings: BridgeSettings, store: Store, copies: DocumentationCopies) -> None:
        self._settings = settings
        self._copies = copies
        ctx = BridgeContext(store, copies, settings.page_limit, settings.rate_per_minute)
        self.http = HttpBridge(settings, ctx) if settings.enabled else None
        self.outbox = Outbox(store, copies, settings.hl7) if settings.hl7.host else None
        self.adt = (
            AdtListener(settings.adt.listen, store, self._discharged, settings.adt.ward_threads)
            if settings.adt.listen
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []

    async def _discharged(self, threads: list[str]) -> None:
        if self.outbox is None:
            return
        for thread in threads:
            await self.outbox.push_if_new(thread, actor=ACTOR)

    async def start(self) -> None:
        """Open what is configured; a port that cannot be bound raises OSError."""
        if self.http is not None:
            await self.http.start()
        if self.adt is not None:
            await self.adt.start()
        if self.outbox is not None:
            self._tasks.append(asyncio.create_task(self.outbox.run(), name="bridge-outbox"))
            minutes = self._settings.hl7.push_interval_minutes
            if minutes is not None:
                self._tasks.append(
                    asyncio.create_task(schedule(self.outbox, minutes * 60), name="bridge-push")
                )
        log.info(
            "bridge: api %s, hl7 push %s, adt %s",
            "on" if self.http else "off",
            "on" if self.outbox else "off",
            "on" if self.adt else "off",
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self.adt is not None:
            await self.adt.stop()
        if self.http is not None:
            await self.http.stop()
