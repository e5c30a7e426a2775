"""The gateway's purge job: runs the purge every ``retention.purge_interval_minutes`` (I.7, IV.8).

Started and stopped beside the component by the gateway (app.py). A run that fails is
logged and retried at the next interval; the job never stops the gateway, and the
purge's small batches keep relaying responsive while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from xmpp_clinic.config import Settings
from xmpp_clinic.retention.purge import PurgeOutcome, Purger
from xmpp_clinic.retention.receipts import ReceiptBook
from xmpp_clinic.retention.server_mam import server_archive
from xmpp_clinic.store import Store, StoreUnavailable

log = logging.getLogger(__name__)

AfterRun = Callable[[PurgeOutcome], Awaitable[None]]


def purger(store: Store, settings: Settings) -> Purger:
    """The purge as configured: gateway archive, metadata and the server's copies (I.7)."""
    r = settings.retention
    return Purger(
        store, r, ReceiptBook(store, r.receipt_key_file, r.receipts_directory),
        server=server_archive(r), component=settings.xmpp.component_jid,
    )  # fmt: skip


class PurgeScheduler:
    """Purges on a timer; ``run_once`` is what each tick does (tests call it directly)."""

    def __init__(
        self,
        store: Store,
        settings: Settings,
        *,
        interval_seconds: float | None = None,
        after_run: AfterRun | None = None,
    ) -> None:
        self.purger = purger(store, settings)
        retention = settings.retention
        self._interval = interval_seconds or retention.purge_interval_minutes * 60.0
        self._after_run = after_run
        self._task: asyncio.Task[None] | None = None
        self.runs = 0

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> PurgeOutcome:
        """One scheduled purge (rule ``schedule``, actor ``gateway``)."""
        outcome = await self.purger.run(actor="gateway", rule="schedule")
        self.runs += 1
        if outcome.receipt is not None:
            log.info(
                "retention purge",
                extra={
                    "messages": outcome.messages,
                    "audit_events": outcome.audit_events,
                    "devices": outcome.devices,
                    "delivery_records": outcome.linked.deliveries,
                    "part_sets": outcome.linked.part_sets,
                    "documentation_copies": outcome.linked.documentation,
                    "receipt": outcome.receipt.id if outcome.receipt else None,
                },
            )
        if self._after_run is not None:
            await self._after_run(outcome)
        return outcome

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreUnavailable:
                log.warning("store unavailable; retention purge postponed")
            except Exception:
                log.exception("retention purge failed; retried at the next interval")
            await asyncio.sleep(self._interval)
