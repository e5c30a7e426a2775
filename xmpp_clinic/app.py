"""Builds and runs the gateway: store + component + services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from xmpp_clinic import __version__
from xmpp_clinic.archive.messages import MessageArchive
from xmpp_clinic.config import Settings
from xmpp_clinic.policy.verdict import MessagePolicy
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.changes import ChangeWatcher
from xmpp_clinic.store.models import GatewayEvent
from xmpp_clinic.threads import ThreadOnlyPolicy, ThreadService
from xmpp_clinic.xmpp.commands import AdminCommands
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.mam import ThreadArchive
from xmpp_clinic.xmpp.muc_admin import MemberLists
from xmpp_clinic.xmpp.relay import Relay
from xmpp_clinic.xmpp.selfping import SelfPing
from xmpp_clinic.xmpp.thread_disco import ThreadDisco
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# How often administrative changes (CLI) are picked up when no message arrives.
CHANGE_POLL_SECONDS = 1.0


class Gateway:
    """One running gateway instance; composition root of every service.

    ``policy`` decides on every thread message (DESIGN.md); without one the gateway
    refuses plaintext only (:class:`ThreadOnlyPolicy`, II.1).
    """

    def __init__(self, settings: Settings, *, policy: MessagePolicy | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.store.url)
        self.component = ClinicComponent(settings)
        self.changes = ChangeWatcher(self.store)
        self.threads = ThreadService(self.store)
        self.archive = MessageArchive(self.store)
        self.policy: MessagePolicy = policy or ThreadOnlyPolicy()
        self.thread_host = ThreadHost(
            self.component, settings, self.threads, refresh=self.changes.refresh
        )
        self.changes.on_change("threads", self.thread_host.reload)
        for part in (
            self.thread_host,
            Relay(self.thread_host, self.archive, self.policy),
            MemberLists(self.thread_host),
            ThreadDisco(self.thread_host),
            ThreadArchive(self.thread_host, self.archive),
            SelfPing(self.thread_host),
            AdminCommands(self.thread_host),
        ):
            part.attach()
        self.component.add_shutdown_hook(self.thread_host.shutdown)
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Migrate the store, then connect; the store must work before anything is relayed."""
        await self.store.migrate()
        await self._record("start")
        await self.thread_host.load()
        await self.changes.refresh()
        self._poller = asyncio.ensure_future(self._poll_changes())
        self.component.start()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.component.stop()
        with contextlib.suppress(Exception):
            await self._record("stop")
        await self.store.close()

    async def _poll_changes(self) -> None:
        """Apply CLI changes within about a second even when nobody sends (IV.2)."""
        while True:
            await asyncio.sleep(CHANGE_POLL_SECONDS)
            try:
                await self.changes.refresh()
            except StoreUnavailable:
                log.warning("store unavailable; membership changes not refreshed")
            except Exception:
                log.exception("applying administrative changes failed")

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
