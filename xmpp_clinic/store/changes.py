"""Change counters: how administrative changes made by the CLI reach a running gateway."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.store.engine import Store
from xmpp_clinic.store.models.gateway import ChangeCounter

log = logging.getLogger(__name__)

Listener = Callable[[], Awaitable[None]]


async def bump(session: AsyncSession, topic: str) -> None:
    """Record that ``topic`` changed; call inside the transaction that made the change."""
    result = await session.execute(
        update(ChangeCounter)
        .where(ChangeCounter.topic == topic)
        .values(value=ChangeCounter.value + 1)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        session.add(ChangeCounter(topic=topic, value=1))


class ChangeWatcher:
    """Compares the counters with what the gateway last saw and calls the listeners.

    The message path calls ``refresh()`` before each decision so that a change committed
    by the CLI applies to the very next message (I.5, IV.2). Callers that arrive together
    share one read of the counters (one small SELECT for a burst of messages), but only a
    read that starts after their call: a change committed before a message arrived is
    always seen before that message is decided.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._seen: dict[str, int] = {}
        self._listeners: dict[str, list[Listener]] = {}
        # One refresh at a time: a caller that arrives while listeners are still reloading
        # waits for them, rather than deciding on the state from before the change.
        self._lock = asyncio.Lock()
        # The refresh that has not read the counters yet; callers arriving now join it.
        self._next: asyncio.Task[set[str]] | None = None

    def on_change(self, topic: str, listener: Listener) -> None:
        self._listeners.setdefault(topic, []).append(listener)

    async def refresh(self) -> set[str]:
        """Call the listeners of every topic that changed since the last refresh.

        A topic counts as seen only once its listeners have finished; if one fails, the
        next refresh calls them again. Raises what the read or a listener raised (every
        caller sharing that refresh fails closed, I.12).
        """
        if self._next is None:
            self._next = asyncio.ensure_future(self._refresh_after_current())
        # Shielded: a cancelled caller must not cancel the read the others are waiting for.
        return set(await asyncio.shield(self._next))

    async def _refresh_after_current(self) -> set[str]:
        async with self._lock:
            # The counters are read from here on: whoever calls now needs the next read.
            self._next = None
            async with self._store.reading() as connection:
                query = select(ChangeCounter.topic, ChangeCounter.value)
                rows = (await connection.execute(query)).all()
            changed = {topic: value for topic, value in rows if self._seen.get(topic) != value}
            for topic, value in changed.items():
                for listener in self._listeners.get(topic, []):
                    await listener()
                self._seen[topic] = value
            return set(changed)
