"""Builds and runs the gateway: store + component + services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from xmpp_clinic import __version__
from xmpp_clinic.config import Settings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models import GatewayEvent
from xmpp_clinic.xmpp.component import ClinicComponent

log = logging.getLogger(__name__)


class Gateway:
    """One running gateway instance; composition root of every service."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = Store(settings.store.url)
        self.component = ClinicComponent(settings)

    async def start(self) -> None:
        """Migrate the store, then connect; the store must work before anything is relayed."""
        await self.store.migrate()
        await self._record("start")
        self.component.start()

    async def stop(self) -> None:
        await self.component.stop()
        with contextlib.suppress(Exception):
            await self._record("stop")
        await self.store.close()

    async def _record(self, kind: str) -> None:
        async with self.store.session() as session:
            session.add(GatewayEvent(kind=kind, version=__version__))


async def run_gateway(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    log.info(
        "gateway started",
        extra={"component": settings.xmpp.component_jid, "store": gateway.store.backend},
    )
    try:
        await stop.wait()
    finally:
        log.info("gateway stopping")
        await gateway.stop()
