"""Learn members' device-list changes as they happen: PEP subscriptions (I.4, I.5).

A new phone must show up as pending within seconds, not at the next rejoin or refresh
(issue 9.7). XEP-0163's presence-based notifications (``+notify`` in entity caps) need a
presence subscription between the user and the subscriber, which a component does not
have; so the component subscribes explicitly (XEP-0060 6.1), from its own JID, to each
member's device-list node of both OMEMO versions at the member's bare JID (the PEP
service). OMEMO clients publish those nodes with the open access model, which lets any
entity subscribe. The server then sends a ``<message>`` with a pubsub ``<event>`` on
every change; :class:`DeviceListWatch` hands the member to ``changed``, which refreshes
them as a join does (both lists and the bundles: new device -> pending).

Where a subscription is refused (the server does not allow it, or the node does not exist
yet), nothing changes: the refresh on join and the periodic refresh
(``policy.device_refresh_seconds``) still apply. Each reason is logged once per server.
A refused node is tried again after the next periodic round (it may exist by then); a
server that does not implement subscriptions (``feature-not-implemented``) is not asked
again until the component reconnects.

Events count only from watched members and only for device-list nodes; the refresh they
cause is coalesced per person (``DeviceUpkeep``), so a flood of events costs one refresh
in flight and one queued. Nothing from the event's payload is trusted: the refresh reads
PEP itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from xmpp_clinic.jids import domain_of, fast_bare
from xmpp_clinic.omemo import VERSIONS
from xmpp_clinic.xmpp.pep import error_condition

log = logging.getLogger(__name__)

DEVICE_LIST_NODES = frozenset(version.device_list_node for version in VERSIONS)
# Conditions that say the server does not offer subscriptions at all. (Prosody 0.12
# answers ``forbidden`` for a node that does not exist yet: that is about the node.)
REFUSED_BY_SERVER = frozenset({"feature-not-implemented"})


class DeviceListWatch:
    """Subscriptions to members' device-list nodes, and the events they bring (I.4)."""

    def __init__(
        self,
        component: Any,
        changed: Callable[[str], None],
        *,
        timeout: float = 10.0,
        concurrency: int = 8,
    ) -> None:
        from slixmpp.exceptions import IqError, IqTimeout

        self._iq_error, self._iq_timeout = IqError, IqTimeout
        self._component = component
        self._changed = changed
        self._timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self.watched: set[str] = set()  # members whose events count
        self.subscribed: set[tuple[str, str]] = set()  # (member, node) confirmed
        self.refused: dict[tuple[str, str], str] = {}  # (member, node) -> why, last try
        self._refusing: set[str] = set()  # server domains that refuse subscriptions
        self._logged: set[str] = set()  # refusal reasons already logged
        self._unsubscribing: set[asyncio.Future[None]] = set()
        component.register_plugin("xep_0060")
        for event in ("pubsub_publish", "pubsub_retract"):
            component.add_event_handler(event, self._on_items)
        for event in ("pubsub_delete", "pubsub_purge"):
            component.add_event_handler(event, self._on_node)

    def reset(self) -> None:
        """After (re)connecting: subscribe everyone again (the server may have restarted)."""
        self.subscribed.clear()
        self._refusing.clear()

    def stop(self) -> None:
        """Shutting down: stop waiting for unsubscription answers."""
        for task in list(self._unsubscribing):
            task.cancel()

    async def watch_many(self, members: Iterable[str]) -> None:
        """Watch exactly ``members``: subscribe the new ones, stop watching the others."""
        wanted = {fast_bare(jid) for jid in members}
        for gone in self.watched - wanted:
            self.forget(gone)
        await asyncio.gather(*(self.watch(jid) for jid in wanted))

    async def watch(self, jid: str) -> None:
        """Subscribe to ``jid``'s device-list nodes (both versions) where not yet done."""
        bare = fast_bare(jid)
        self.watched.add(bare)
        for node in sorted(DEVICE_LIST_NODES):
            if (bare, node) in self.subscribed or domain_of(bare) in self._refusing:
                continue
            async with self._slots:
                if await self._subscribe(bare, node):
                    self.subscribed.add((bare, node))
                    self.refused.pop((bare, node), None)

    def forget(self, jid: str) -> None:
        """No longer a member: ignore their events and unsubscribe (best effort)."""
        bare = fast_bare(jid)
        self.watched.discard(bare)
        for node in DEVICE_LIST_NODES:
            self.refused.pop((bare, node), None)
        pubsub = self._component.plugin["xep_0060"]
        for node in sorted(DEVICE_LIST_NODES):
            if (bare, node) in self.subscribed:
                self.subscribed.discard((bare, node))
                task = asyncio.ensure_future(
                    self._quietly(pubsub.unsubscribe(bare, node, **self._own))
                )
                self._unsubscribing.add(task)
                task.add_done_callback(self._unsubscribing.discard)

    @property
    def _own(self) -> dict[str, Any]:
        own = self._component.boundjid.bare
        return {"subscribee": own, "ifrom": own, "timeout": self._timeout}

    async def _subscribe(self, bare: str, node: str) -> bool:
        pubsub = self._component.plugin["xep_0060"]
        try:
            iq = await pubsub.subscribe(bare, node, **self._own)
        except self._iq_timeout:
            self._refused("timeout", bare, node)
            return False
        except self._iq_error as exc:
            condition = error_condition(exc.iq.xml)
            if condition in REFUSED_BY_SERVER:
                self._refusing.add(domain_of(bare))
            self._refused(condition, bare, node)
            return False
        state = iq["pubsub"]["subscription"]["subscription"] or "subscribed"
        if state != "subscribed":
            self._refused(f"subscription {state}", bare, node)
            return False
        return True

    def _refused(self, why: str, bare: str, node: str) -> None:
        self.refused[(bare, node)] = why
        reason = f"{domain_of(bare)}: {why}"
        level = logging.DEBUG if reason in self._logged else logging.WARNING
        self._logged.add(reason)
        log.log(
            level,
            "PEP subscription refused; device lists of such members are read on join and "
            "periodically (policy.device_refresh_seconds)",
            extra={"why": why, "server": domain_of(bare), "node": node},
        )

    async def _quietly(self, work: Any) -> None:
        with contextlib.suppress(self._iq_error, self._iq_timeout):
            await work

    # ------------------------------------------------------------------ events
    def _on_items(self, msg: Any) -> None:
        self._event(msg, msg["pubsub_event"]["items"]["node"])

    def _on_node(self, msg: Any) -> None:
        event = msg["pubsub_event"]
        self._event(msg, event["delete"]["node"] or event["purge"]["node"])

    def _event(self, msg: Any, node: str) -> None:
        sender = msg["from"]
        if node not in DEVICE_LIST_NODES or sender.resource or sender.bare not in self.watched:
            return
        log.debug("device list changed", extra={"node": node})
        self._changed(sender.bare)
