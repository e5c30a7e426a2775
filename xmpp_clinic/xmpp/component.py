"""The XEP-0114 component: connection, reconnection, discovery, privacy notice.

Services (threads, MAM, commands, ...) attach themselves to a :class:`ClinicComponent`
by registering handlers on it; the component itself only knows how to stay connected
and how to describe itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from slixmpp import JID, ComponentXMPP
from slixmpp.plugins.xep_0004 import Form
from slixmpp.xmlstream import ElementBase

from xmpp_clinic import __version__
from xmpp_clinic import namespaces as ns
from xmpp_clinic.config import Settings
from xmpp_clinic.records import member_jid

log = logging.getLogger(__name__)

PRIVACY_FORM_TYPE = "urn:xmpp-clinic:privacy:0"
# While the server stays away, why is said once at WARNING, then again about this often.
OUTAGE_REMINDER_SECONDS = 60.0
# How long one attempt waits for the server to accept the handshake.
ATTEMPT_SECONDS = 10.0

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
    form.add_field(  # the announced member of documented threads (I.6)
        var="documentation-service",
        ftype="text-single",
        label="Documented threads include the documentation service",
        value=member_jid(settings.records.localpart, settings.xmpp.component_jid),
    )
    return form


def failure_cause(event: object) -> str:
    """Why a connection attempt failed, in words an operator can act on (no secrets)."""
    if isinstance(event, OSError):
        return f"{type(event).__name__}: {event}"
    if isinstance(event, ElementBase):  # a <stream:error>, e.g. not-authorized: wrong secret
        condition, text = event["condition"], event["text"]
        return f"stream error {condition}" + (f": {text}" if text else "")
    return str(event)


class Outage:
    """What the log says while the server cannot be reached (IV.5, I.12).

    The first failure says where and why at WARNING; while it lasts, a reminder at INFO
    about once every :data:`OUTAGE_REMINDER_SECONDS` (the attempts themselves go on at
    the fast capped backoff); coming back is the usual "component online" line, with
    the number of attempts and the time away.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        reminder_seconds: float = OUTAGE_REMINDER_SECONDS,
    ) -> None:
        self._where = {"server_host": host, "server_port": port}
        self._clock = clock
        self._reminder = reminder_seconds
        self.started: float | None = None
        self.attempts = 0
        self._said = 0.0

    def failed(self, cause: str, retry_in: float) -> None:
        now = self._clock()
        self.attempts += 1
        if self.started is None:
            self.started = self._said = now
            log.warning(
                "XMPP server not reachable; retrying",
                extra={**self._where, "cause": cause, "retry_in_s": retry_in},
            )
        elif now - self._said >= self._reminder:
            self._said = now
            log.info(
                "XMPP server still not reachable; retrying",
                extra={**self._where, "cause": cause, **self._so_far(now)},
            )

    def ended(self) -> dict[str, float | int]:
        """The server took the component again: how long it was away (empty if it wasn't)."""
        if self.started is None:
            return {}
        facts = self._so_far(self._clock())
        self.started, self.attempts = None, 0
        return facts

    def _so_far(self, now: float) -> dict[str, float | int]:
        return {"attempts": self.attempts, "down_s": round(now - (self.started or now), 1)}


class ClinicComponent(ComponentXMPP):
    """The gateway's XMPP face: one component connection to the hospital's server."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        xmpp = settings.xmpp
        super().__init__(
            xmpp.component_jid, settings.component_secret, xmpp.server_host, xmpp.server_port
        )
        self.settings = settings
        self.outage = Outage(xmpp.server_host, xmpp.server_port, clock=clock)
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
        log.info("component online", extra={"component": self.boundjid.bare, **self.outage.ended()})
        self._online.set()

    def _on_disconnected(self, _reason: Any) -> None:
        was_online = self._online.is_set()
        self._online.clear()
        if was_online and not self._stopping:
            log.warning("component connection lost; reconnecting")

    async def _attempt(self, timeout: float) -> str | None:
        """One connection attempt: None once the server accepted the handshake, else why not."""
        failure: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_failure(event: Any) -> None:
            if not failure.done():
                failure.set_result(failure_cause(event))

        self.add_event_handler("connection_failed", on_failure)
        self.add_event_handler("stream_error", on_failure)
        online = asyncio.ensure_future(self._online.wait())
        try:
            self.connect()
            waiters: set[asyncio.Future[Any]] = {online, failure}
            await asyncio.wait(waiters, timeout=timeout, return_when="FIRST_COMPLETED")
            if online.done():
                return None
            return failure.result() if failure.done() else f"no answer within {timeout:g} s"
        finally:
            online.cancel()
            self.del_event_handler("connection_failed", on_failure)
            self.del_event_handler("stream_error", on_failure)

    async def stay_connected(self) -> None:
        """Connect, and reconnect with capped backoff whenever the server goes away.

        slixmpp's own backoff grows to minutes; a hospital gateway must be back within
        seconds of the server returning, so the cap comes from config
        (``xmpp.reconnect_max_delay``). The log says why once, not once per attempt
        (:class:`Outage`).
        """
        delay = 0.1
        cap = self.settings.xmpp.reconnect_max_delay
        while not self._stopping:
            cause = await self._attempt(ATTEMPT_SECONDS)
            if cause is None:
                delay = 0.1
                await self.disconnected
                continue
            self.cancel_connection_attempt()
            if self.transport is not None:
                self.abort()
            if self._stopping:
                break
            self.outage.failed(cause, delay)
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
        if self._run_out_filters is not None:  # slixmpp keeps its send loop until __del__
            self._run_out_filters.cancel()
