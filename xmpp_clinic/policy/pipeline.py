"""The policy pipeline: shape -> membership -> e2e -> devices, for every thread message.

Implements :class:`~xmpp_clinic.policy.verdict.MessagePolicy` (II.1, I.4, I.5, III.3,
IV.2, I.12). The stanza's depth and size are bounded before anything walks or copies it.
The e2e check may replace the fallback body (a MODIFY verdict); the device check then
works on that message, so what is relayed carries both changes.

Decisions are made from an in-memory cache of the registry, filled per person with the
devices of the people a message concerns (its thread's members), so the cache holds what
is used, not every device row (issue 13). The relay refreshes the store's change counters
before each message and :meth:`Pipeline.reload` (a listener on the "devices" counter)
empties the cache, so a revocation applies to the next message.
Anything unexpected -- store down, registry unknown, a bug -- refuses the message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Hashable
from datetime import datetime
from typing import Protocol

from xmpp_clinic.archive.audit import AuditEvent
from xmpp_clinic.clock import utcnow
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.jids import fast_bare
from xmpp_clinic.omemo import OmemoHeader, parse_header
from xmpp_clinic.policy.devices import DeviceCheck, DeviceFacts, check_devices
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.membership import check_membership, members_of
from xmpp_clinic.policy.shape import check_shape
from xmpp_clinic.policy.verdict import (
    NOT_REFUSALS,
    Action,
    MessageContext,
    ReasonCode,
    Verdict,
)
from xmpp_clinic.registry.model import Device, DeviceKey
from xmpp_clinic.registry.snapshot import RegistrySnapshot

log = logging.getLogger(__name__)

_VIEWS = 1024  # person sets whose snapshot is kept (about one per active thread)

Discovery = Callable[[str], Awaitable[object]]


class RegistrySource(Protocol):
    """Where the pipeline loads devices from (the DeviceRegistry service)."""

    async def devices_of(self, persons: Collection[str]) -> list[Device]: ...


class AuditSink(Protocol):
    """Where rejections and stripped keys are recorded (archive.audit.AuditLog)."""

    async def record(self, event: AuditEvent) -> int: ...


class _Memory:
    """A bounded set of recently seen keys with the time each was added."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, float] = OrderedDict()

    def age(self, key: Hashable) -> float | None:
        added = self._items.get(key)
        return None if added is None else time.monotonic() - added

    def add(self, key: Hashable) -> None:
        self._items[key] = time.monotonic()
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)


class Pipeline:
    """Decides on every groupchat message of a thread (a MessagePolicy)."""

    def __init__(
        self,
        policy: PolicySettings,
        registry: RegistrySource,
        *,
        discovery: Discovery | None = None,
        audit: AuditSink | None = None,
        clock: Callable[[], datetime] = utcnow,
        discovery_timeout: float = 10.0,
        rediscover_after: float = 60.0,
        memory: int = 10_000,
        cached_persons: int = 20_000,
    ) -> None:
        self._policy = policy
        self._registry = registry
        self._discovery = discovery
        self._audit = audit
        self._clock = clock
        self._discovery_timeout = discovery_timeout
        self._rediscover_after = rediscover_after
        # Person -> all their devices, least recently used first (bounded, issue 13).
        self._cache: OrderedDict[str, tuple[Device, ...]] = OrderedDict()
        self._cache_size = cached_persons
        # Person sets -> their snapshot, for this generation: a thread's members are the
        # same set message after message, so its index is built once (bounded).
        self._views: OrderedDict[frozenset[str], RegistrySnapshot] = OrderedDict()
        self._generation = 0  # bumped by every reload(); a load from before it is stale
        self._lock = asyncio.Lock()
        self._told = _Memory(memory)  # (thread, sender device, member) already told
        self._asked = _Memory(memory)  # sender devices we asked discovery about
        self._seen: set[DeviceKey] = set()
        self._seen_cap = memory

    # ------------------------------------------------------------ registry cache
    async def reload(self) -> None:
        """Empty the cache; a ChangeWatcher listener for "devices" (I.5).

        The next message reads its people's devices from the store again; if that fails,
        it is refused rather than decided on stale approvals.
        """
        self._generation += 1
        self._cache.clear()
        self._views.clear()

    async def snapshot(self, persons: Collection[str]) -> RegistrySnapshot:
        """The devices of ``persons`` (bare JIDs), from the cache or the store; never
        devices read before the last reload(). Decisions and each member's trimmed copy
        (xmpp_clinic.trimming, II.3) come from the same cache and the same reloads.

        A load in flight when a revocation arrives read the old state: its result is
        thrown away and the store read again, so the revocation is not lost (I.5).
        """
        wanted = persons if isinstance(persons, frozenset) else frozenset(persons)
        view = self._views.get(wanted)
        if view is not None:  # built in this generation: cleared by every reload()
            return view
        async with self._lock:
            while missing := [p for p in wanted if p not in self._cache]:
                generation = self._generation
                loaded = await self._registry.devices_of(missing)
                if generation != self._generation:
                    continue
                owned: dict[str, list[Device]] = {person: [] for person in missing}
                for device in loaded:
                    owned.setdefault(device.jid, []).append(device)
                for person, devices in owned.items():
                    self._cache[person] = tuple(devices)
            found: list[Device] = []
            for person in wanted:
                found.extend(self._cache[person])
                self._cache.move_to_end(person)
            if len(self._cache) > self._cache_size:
                self._views.clear()  # no view outlives its people in the cache
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            view = RegistrySnapshot(found)
            self._views[wanted] = view
            while len(self._views) > _VIEWS:
                self._views.popitem(last=False)
        return view

    def drain_seen(self) -> set[DeviceKey]:
        """Sender devices accepted since the last call (for DeviceRegistry.mark_seen)."""
        seen, self._seen = self._seen, set()
        return seen

    # ---------------------------------------------------------------- decisions
    async def evaluate(self, ctx: MessageContext) -> Verdict:
        """shape -> membership -> e2e -> devices; the first refusal wins (II.1, I.4, I.5,
        IV.2, I.12)."""
        try:
            verdict, header = await self._decide(ctx)
        except Exception:
            log.exception("policy pipeline failed; refusing the message (fail closed)")
            verdict, header = (
                Verdict.reject(ReasonCode.POLICY_ERROR, "The gateway could not check it."),
                None,
            )
        return await self._record(ctx, verdict, header)

    async def _decide(self, ctx: MessageContext) -> tuple[Verdict, OmemoHeader | None]:
        verdict = check_shape(ctx.stanza)
        if verdict.rejected:
            return verdict, None
        verdict = check_membership(ctx)
        if verdict.rejected:
            return verdict, None
        parsed = parse_header(ctx.stanza)
        e2e = check_e2e(ctx.stanza, parsed, required=self._policy.require_e2e)
        if e2e.rejected or not isinstance(parsed, OmemoHeader):
            return e2e, None
        message = e2e.stanza if e2e.stanza is not None else ctx.stanza
        facts = DeviceFacts(
            fast_bare(ctx.sender), members_of(ctx), self._clock(), self._policy.unapproved_recipient
        )
        persons = facts.members | {facts.sender}
        try:
            snapshot = await self.snapshot(persons)
        except Exception:
            log.warning("device registry unavailable; refusing the message")
            text = "The device registry is not available; try again shortly."
            return Verdict.reject(ReasonCode.REGISTRY_UNAVAILABLE, text), parsed
        check = check_devices(parsed, message, facts, snapshot)
        if not check.sender_known and await self._discover_sender(facts.sender, parsed):
            check = check_devices(parsed, message, facts, await self.snapshot(persons))
        if check.unknown_recipients and await self._discover_recipients(facts, check):
            check = check_devices(parsed, message, facts, await self.snapshot(persons))
        return self._follow_up(ctx, parsed, check, e2e), parsed

    async def _discover_sender(self, sender: str, header: OmemoHeader) -> bool:
        """Ask discovery about an unknown sender device, at most once a minute per person.

        Keyed by person, not device id: a sender who keeps inventing device ids must not
        hold up the thread with a PEP round trip for every message (I.4).
        """
        return await self._discover({("sender", sender): sender})

    async def _discover_recipients(self, facts: DeviceFacts, check: DeviceCheck) -> bool:
        """Ask discovery about members whose devices got a key the registry never saw (I.4).

        A member may publish a device after joining (or never join and read later by
        MAM); without this their key would be removed until the periodic refresh. Legacy
        keys carry no JID, so every member is asked; OMEMO 2 keys name their member.
        Each member is asked at most once a minute.
        """
        jids: set[str] = set()
        for key in check.unknown_recipients:
            jids |= facts.members if key.jid is None else {key.jid} & facts.members
        return await self._discover({("recipient", jid): jid for jid in sorted(jids)})

    async def _discover(self, asks: dict[Hashable, str]) -> bool:
        """Refresh the people of ``asks`` (memory key -> bare JID) not asked in the last
        ``rediscover_after`` seconds, then reload the snapshot; False if nobody was asked."""
        due = {
            key: jid
            for key, jid in asks.items()
            if (age := self._asked.age(key)) is None or age >= self._rediscover_after
        }
        if self._discovery is None or not due:
            return False
        for key in due:
            self._asked.add(key)
        discovery = self._discovery
        try:
            await asyncio.wait_for(
                asyncio.gather(*(discovery(jid) for jid in set(due.values()))),
                self._discovery_timeout,
            )
        except Exception:
            log.warning("device discovery failed", extra={"people": len(due)})
            return False
        await self.reload()
        return True

    def _follow_up(
        self, ctx: MessageContext, header: OmemoHeader, check: DeviceCheck, e2e: Verdict
    ) -> Verdict:
        """The final verdict: the device check's, or the e2e change when the devices
        changed nothing (the device check worked on the e2e-changed message), plus notices."""
        verdict = check.verdict
        if verdict.rejected:
            return verdict
        if verdict.action is Action.ACCEPT:
            verdict = e2e
        sender = DeviceKey(fast_bare(ctx.sender), header.namespace, header.sid)
        if len(self._seen) < self._seen_cap:
            self._seen.add(sender)
        notices = list(verdict.notices)
        for member in check.unreadable_for:
            told = (ctx.thread, sender, member)
            if self._told.age(told) is None:
                self._told.add(told)
                notices.append(
                    f"{member} may not be able to read your messages here: one of their "
                    "approved devices did not get a key (or they have none approved)."
                )
        return dataclasses.replace(verdict, notices=tuple(notices))

    async def _record(
        self, ctx: MessageContext, verdict: Verdict, header: OmemoHeader | None
    ) -> Verdict:
        """Audit refusals and removed keys (no content; the sender's device id only); the
        gateway's own fallback text is the normal path and not an event."""
        if self._audit is None or verdict.action is Action.ACCEPT:
            return verdict
        if not verdict.rejected and verdict.reason in NOT_REFUSALS:
            return verdict
        action = "message.rejected" if verdict.rejected else "message.keys-removed"
        note = f"sender device {header.sid}" if header is not None else ""
        event = AuditEvent(
            fast_bare(ctx.sender), action, verdict.reason, fast_bare(ctx.thread), note
        )
        try:
            await self._audit.record(event)
        except Exception:
            log.warning("audit log unavailable", extra={"reason": verdict.reason})
            if not verdict.rejected:  # fail closed: no record of the change, no relay
                text = "The gateway could not record this message; try again shortly."
                return Verdict.reject(ReasonCode.STORE_UNAVAILABLE, text)
        return verdict
