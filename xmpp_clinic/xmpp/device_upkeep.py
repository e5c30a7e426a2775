"""Keeps the device registry current on a running gateway (I.4, I.5, III.3).

- A member who joins a thread or is added to one has their PEP device lists read at
  once (one refresh per person in flight, at most one more queued behind it).
- The component subscribes to every member's device-list nodes (``pep_watch.py``): when
  the server allows it, a device published later is refreshed the same way within
  seconds. Members are (re)subscribed when they arrive, when the component comes
  online, and after every periodic round.
- Every ``policy.device_refresh_seconds`` every member is refreshed and expiry is applied
  (:meth:`DeviceDiscovery.run_periodic`).
- Notices the registry queued (device pending, approved, revoked, expiring, expired) go
  to the person as chat messages from the gateway's JID: after each periodic round,
  whenever the "devices" change counter moves, and when the component comes online.
  Each leaves the queue only once sent (at least once, never lost to a disconnect).
- Last-seen times of devices that sent are written every ``NOTICE_SECONDS``.

Background loops log failures (never content or keys) and keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from xmpp_clinic import namespaces as ns
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.registry.model import DeviceKey, Notice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.xmpp import muc_stanzas as ms
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.pep import DeviceDiscovery, RefreshResult
from xmpp_clinic.xmpp.pep_watch import DeviceListWatch

log = logging.getLogger(__name__)

# How often queued notices are looked for without a "devices" change, and how often
# last-seen times are written.
NOTICE_SECONDS = 60.0
NOTICE_BATCH = 100
# A client may publish its device list before the new device's bundle: after an event,
# a refresh that could not read a bundle is done once more this much later.
BUNDLE_RETRY_SECONDS = 3.0


class DeviceUpkeep:
    """Discovery on arrival, periodic refresh and expiry, notices, last-seen (I.4, I.5)."""

    def __init__(
        self,
        component: ClinicComponent,
        registry: DeviceRegistry,
        discovery: DeviceDiscovery,
        members: Callable[[], Awaitable[Iterable[str]]],
        *,
        seen: Callable[[], set[DeviceKey]] | None = None,
        interval: float = NOTICE_SECONDS,
        watch: bool = True,
    ) -> None:
        self._component = component
        self._registry = registry
        self._discovery = discovery
        self._members = members
        self._seen = seen
        self._interval = interval
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._arrivals: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._retry: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._watching: asyncio.Task[None] | None = None
        # Device-list events refresh a member as an arrival does (issue 9.7).
        self.watch = DeviceListWatch(component, self._list_changed) if watch else None

    # ------------------------------------------------------------------ hooks
    def member_arrived(self, jid: str) -> None:
        """Read ``jid``'s devices now and watch their device lists (a ThreadHost arrival
        listener); never blocks."""
        bare = fast_bare(jid)
        if self.watch is not None and bare not in self.watch.watched:
            self._background(self.watch.watch(bare))
        self._refresh_soon(bare)

    def _list_changed(self, bare: str) -> None:
        """A device-list event from ``bare``: refresh now, and once more if a bundle of a
        listed device is not there yet."""
        self._refresh_soon(bare, retry_keyless=True)

    def _refresh_soon(self, bare: str, *, retry_keyless: bool = False) -> None:
        if retry_keyless:
            self._retry.add(bare)
        if bare in self._arrivals:
            self._again.add(bare)  # the list may have changed since that refresh began
            return
        self._arrivals[bare] = asyncio.ensure_future(self._refresh_arrival(bare))

    async def devices_changed(self) -> None:
        """A ChangeWatcher listener for "devices": send the queued notices soon."""
        self._wake.set()

    def online(self, _event: object = None) -> None:
        """The component is (back) online: notices queued meanwhile can go out, and every
        member's device lists are subscribed to again."""
        self._wake.set()
        if self.watch is not None:
            self.watch.reset()
            self._watch_members()

    def _watch_members(self) -> None:
        """Subscribe to every member's device lists (one round at a time)."""
        if self.watch is None or (self._watching is not None and not self._watching.done()):
            return
        watch = self.watch

        async def round_() -> None:
            await watch.watch_many(await self._members())

        self._watching = self._background(round_())

    def _background(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        async def logged() -> None:
            try:
                await work
            except Exception:
                log.exception("subscribing to device lists failed; the periodic refresh applies")

        task = asyncio.ensure_future(logged())
        self._tasks.append(task)
        task.add_done_callback(self._tasks_done)
        return task

    def _tasks_done(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks and task.done():
            self._tasks.remove(task)

    # -------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self._tasks += [
            asyncio.ensure_future(
                self._discovery.run_periodic(self._members, after_round=self._after_round)
            ),
            asyncio.ensure_future(self._notice_loop()),
        ]

    async def stop(self) -> None:
        if self.watch is not None:
            self.watch.stop()
        tasks = [*self._tasks, *self._arrivals.values()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks, self._arrivals = [], {}

    # ------------------------------------------------------------------- work
    async def _refresh_arrival(self, bare: str) -> None:
        try:
            while True:
                self._again.discard(bare)
                retry = bare in self._retry
                self._retry.discard(bare)
                result: RefreshResult | None = None
                try:
                    result = await self._discovery.refresh(bare)
                except Exception:
                    log.exception("device discovery on arrival failed")
                if retry and result is not None and result.keyless:
                    await asyncio.sleep(BUNDLE_RETRY_SECONDS)
                    self._again.add(bare)
                if bare not in self._again:
                    return
        finally:
            self._arrivals.pop(bare, None)

    async def _notice_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval)
            self._wake.clear()
            try:
                await self.send_notices()
                seen = self._seen() if self._seen is not None else set()
                if seen:
                    await self._registry.mark_seen(seen)
            except Exception:
                log.exception("sending device notices failed; trying again later")

    async def _after_round(self) -> None:
        """After a periodic refresh: send the notices it queued, renew subscriptions."""
        try:
            await self.send_notices()
        finally:
            self._watch_members()

    async def send_notices(self) -> int:
        """Send every queued notice while the component is online; how many were sent (I.5).

        A notice leaves the queue only after it was handed to the connection: if the
        component goes offline mid-batch, the rest stay queued for the next round.
        """
        sent = 0
        async with self._sending:
            while self._component.online:
                batch = await self._registry.take_notices(NOTICE_BATCH)
                done: list[int] = []
                for notice in batch:
                    if not self._component.online:
                        break
                    self._send(notice)
                    if notice.queue_id is not None:
                        done.append(notice.queue_id)
                await self._registry.ack_notices(done)
                sent += len(done)
                if len(batch) < NOTICE_BATCH or len(done) < len(batch):
                    break
        if sent:
            log.info("device notices sent", extra={"count": sent})
        return sent

    def _send(self, notice: Notice) -> None:
        root = ms.stanza("message", self._component.boundjid.bare, notice.jid, type="chat")
        ET.SubElement(root, f"{{{ns.COMPONENT}}}body").text = notice.text
        self._component.send(ms.serialise(root))
