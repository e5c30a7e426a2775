"""The XEP-0114 component: connection, reconnection, discovery, privacy notice.

Services (threads, MAM, commands, ...) attach themselves to a :class:`ClinicComponent`
by registering handlers on it; the component itself only knows how to stay connected
and how to describe itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slixmpp import JID, ComponentXMPP
from slixmpp.plugins.xep_0004 import Form

from xmpp_clinic import __version__
from xmpp_clinic import namespaces as ns
from xmpp_clinic.config import Settings

log = logging.getLogger(__name__)

PRIVACY_FORM_TYPE = "urn:xmpp-clinic:privacy:0"

# Features the component domain itself offers; threads add their own on their JIDs.
COMPONENT_FEATURES = (ns.DISCO_INFO, ns.DISCO_ITEMS, ns.MUC, ns.COMMANDS, ns.VERSION, ns.PING)


def privacy_form(settings: Settings) -> Form:
    """The GDPR Art. 13 notice as XEP-0128 extended info (I.1).

    Uses the XEP-0157 field names (``privacy-addresses`` for the notice) so generic
    clients that show server contact information show it too.
    """
    form = Form()
    form["type"] = "result"
    form.add_field(var="FORM_TYPE", ftype="hidden", value=PRIVACY_FORM_TYPE)
    form.add_field(
        var="privacy-notice-url",
        ftype="text-single",
        label="Privacy notice (GDPR Art. 13)",
        value=settings.privacy.notice_url,
    )
    form.add_field(
        var="controller-contact",
        ftype="text-single",
        label="Data protection contact",
        value=settings.privacy.controller_contact,
    )
    return form


class ClinicComponent(ComponentXMPP):
    """The gateway's XMPP face: one component connection to the hospital's server."""

    def __init__(self, settings: Settings) -> None:
        xmpp = settings.xmpp
        super().__init__(
            xmpp.component_jid, settings.component_secret, xmpp.server_host, xmpp.server_port
        )
        self.settings = settings
        self._stopping = False
        self._online = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._shutdown_hooks: list[Callable[[], Awaitable[None]]] = []
        for plugin in ("xep_0030", "xep_0004", "xep_0128", "xep_0199", "xep_0050"):
            self.register_plugin(plugin)
        self.register_plugin("xep_0092", {"name": "xmpp-clinic", "version": __version__})
        self.add_event_handler("session_start", self._on_session_start)
        self.add_event_handler("disconnected", self._on_disconnected)
        self._describe()

    # ----------------------------------------------------------------- discovery
    def _describe(self) -> None:
        disco = self.plugin["xep_0030"]
        jid = JID(self.boundjid.bare)
        disco.add_identity(
            category="conference", itype="text", name="Care threads (xmpp-clinic)", jid=jid
        )
        disco.add_identity(category="component", itype="generic", name="xmpp-clinic", jid=jid)
        for feature in COMPONENT_FEATURES:
            disco.add_feature(feature, jid=jid)
        # add_, not set_: slixmpp 1.17's set_extended_info first deletes through a
        # stanza interface that no longer exists and logs a spurious warning.
        self.plugin["xep_0128"].add_extended_info(jid=jid, data=privacy_form(self.settings))

    # ------------------------------------------------------------- connectivity
    @property
    def online(self) -> bool:
        return self._online.is_set()

    async def wait_online(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._online.wait(), timeout)

    def add_shutdown_hook(self, hook: Callable[[], Awaitable[None]]) -> None:
        """Run ``hook`` while still connected during a clean shutdown (e.g. status 332)."""
        self._shutdown_hooks.append(hook)

    def _on_session_start(self, _event: Any) -> None:
        log.info("component online", extra={"component": self.boundjid.bare})
        self._online.set()

    def _on_disconnected(self, _reason: Any) -> None:
        was_online = self._online.is_set()
        self._online.clear()
        if was_online and not self._stopping:
            log.warning("component connection lost; reconnecting")

    async def _attempt(self, timeout: float) -> bool:
        """One connection attempt; True once the server accepted the handshake."""
        failed = asyncio.Event()

        def on_failure(_event: Any) -> None:
            failed.set()

        self.add_event_handler("connection_failed", on_failure)
        self.add_event_handler("stream_error", on_failure)
        try:
            self.connect()
            online = asyncio.ensure_future(self._online.wait())
            failure = asyncio.ensure_future(failed.wait())
            done, pending = await asyncio.wait(
                {online, failure}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
            return online in done
        finally:
            self.del_event_handler("connection_failed", on_failure)
            self.del_event_handler("stream_error", on_failure)

    async def stay_connected(self) -> None:
        """Connect, and reconnect with capped backoff whenever the server goes away.

        slixmpp's own backoff grows to minutes; a hospital gateway must be back within
        seconds of the server returning, so the cap comes from config
        (``xmpp.reconnect_max_delay``).
        """
        delay = 0.1
        cap = self.settings.xmpp.reconnect_max_delay
        while not self._stopping:
            if await self._attempt(timeout=10):
                delay = 0.1
                await self.disconnected
                continue
            self.cancel_connection_attempt()
            if self.transport is not None:
                self.abort()
            if self._stopping:
                break
            log.info("server not reachable; retrying", extra={"delay_s": delay})
            await asyncio.sleep(delay)
            delay = min(cap, delay * 2)

    def start(self) -> asyncio.Task[None]:
        """Start the connection supervisor in the background."""
        self._supervisor = asyncio.ensure_future(self.stay_connected())
        return self._supervisor

    async def stop(self) -> None:
        """Tell occupants, then disconnect cleanly (SIGTERM / Ctrl-C)."""
        self._stopping = True
        if self.online:
            for hook in self._shutdown_hooks:
                try:
                    await hook()
                except Exception:
                    log.exception("shutdown hook failed")
            await self.disconnect(wait=2.0, reason="gateway shutting down")
        self.cancel_connection_attempt()
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
