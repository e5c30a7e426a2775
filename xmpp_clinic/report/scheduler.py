"""The running gateway saves a report on a schedule (IV.4: regular review).

Off unless ``report.save_every_hours`` is set. Each saved report joins the hash chain of
``report --save``; ``xmpp-clinic report diff`` compares the live system with the last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from xmpp_clinic.config import Settings
from xmpp_clinic.report.build import Sources, build_report
from xmpp_clinic.report.history import ReportHistory
from xmpp_clinic.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class ReportScheduler:
    """Saves a report now and every ``report.save_every_hours`` while the gateway runs."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self._settings = settings
        self._store = store
        self._sources = Sources.from_settings(settings)
        self._task: asyncio.Task[None] | None = None

    @property
    def every_seconds(self) -> float:
        return self._settings.report.save_every_hours * 3600.0

    def start(self) -> None:
        if self.every_seconds > 0 and self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def save_now(self) -> int:
        """Build and save one report; its sequence number."""
        report = await build_report(self._settings, self._store, self._sources)
        saved = await ReportHistory(self._store).save(report)
        counts = report.counts()
        log.info(
            "compliance report saved",
            extra={"seq": saved.seq, "weakened": len(report.weakened), **counts},
        )
        return saved.seq

    async def _run(self) -> None:
        while True:
            try:
                await self.save_now()
            except StoreUnavailable:
                log.warning("store unavailable; compliance report not saved")
            except Exception:
                log.exception("saving the compliance report failed")
            await asyncio.sleep(self.every_seconds)
