"""A background round that repeats, and stops between rounds, never inside one.

Cancelling a loop in the middle of a store write leaves SQLAlchemy's connection reset
half done (a CancelledError traceback at shutdown) and can lose the round's last write,
e.g. the flag that a notice was posted, so it is posted again after a restart.
:meth:`Periodic.stop` cancels a loop that is waiting, and lets a round in progress finish
(up to ``grace`` seconds) before it cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Periodic:
    """Run ``work`` every ``every()`` seconds, or sooner after :meth:`wake`.

    ``work`` handles what it expects (a store that is down, say); anything else is
    logged with ``name`` and the loop goes on: one bad round must not end the schedule.
    """

    def __init__(
        self, work: Callable[[], Awaitable[object]], every: Callable[[], float], *, name: str
    ) -> None:
        self._work = work
        self._every = every
        self._name = name
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._busy = False

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.ensure_future(self._run())

    def wake(self) -> None:
        """Run the next round now rather than at the end of the interval."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        if self._busy:
            self._wake.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), grace)
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._every())
            self._wake.clear()
            if self._stopping:
                return
            self._busy = True
            try:
                await self._work()
            except Exception:
                log.exception("%s failed; trying again next round", self._name)
            finally:
                self._busy = False
