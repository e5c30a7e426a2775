"""The running gateway's periodic directory sync (``directory.sync_interval_minutes``, IV.2).

Every interval the gateway reads the directory (LDAP / Active Directory) in a worker
thread and applies it as ``xmpp-clinic directory sync`` would, with the same guard: a
read that would remove more than ``directory.max_removal_share`` of the persons is
refused and logged, never forced. A source that cannot be read changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from xmpp_clinic.directory.csv_import import Parsed
from xmpp_clinic.directory.model import DirectoryError
from xmpp_clinic.directory.service import DirectoryService, ImportResult

log = logging.getLogger(__name__)

ACTOR = "gateway:directory-sync"


class DirectorySync:
    """Runs ``read`` every ``interval_seconds`` and applies what it returns."""

    def __init__(
        self,
        service: DirectoryService,
        read: Callable[[], Parsed],
        *,
        interval_seconds: float,
        source: str,
    ) -> None:
        self._service = service
        self._read = read
        self._interval = interval_seconds
        self._source = source
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_once(self) -> ImportResult | None:
        """One sync; None when the source could not be read or the guard refused it."""
        try:
            parsed = await asyncio.to_thread(self._read)
            result = await self._service.apply(parsed.directory, actor=ACTOR, source=self._source)
        except DirectoryError as exc:
            log.error("directory sync refused or failed; nothing changed", extra={"why": str(exc)})
            return None
        log.info(
            "directory synced",
            extra={
                "summary": result.diff.summary(),
                "bad_rows": len(parsed.bad_rows),
                "left": len(result.left),
                "devices_revoked": result.revoked,
            },
        )
        return result

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.run_once()
            except Exception:  # the store may be down: try again next interval
                log.exception("directory sync failed")
