"""Builds and runs the gateway: store + component + services."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from xmpp_clinic import __version__
from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.archive.messages import MessageArchive
from xmpp_clinic.bridge.documentation import open_copies
from xmpp_clinic.bridge.service import BridgeService
from xmpp_clinic.completeness.delivery_store import Deliveries
from xmpp_clinic.completeness.part_store import PartSets
from xmpp_clinic.config import Settings
from xmpp_clinic.directory.ejabberd_roster import EjabberdRosterApi
from xmpp_clinic.directory.ldap import read_ldap
from xmpp_clinic.directory.service import DirectoryService
from xmpp_clinic.directory.sync import DirectorySync
from xmpp_clinic.policy.pipeline import Pipeline
from xmpp_clinic.policy.verdict import MessagePolicy
from xmpp_clinic.records import member_jid
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.report.scheduler import ReportScheduler
from xmpp_clinic.report.server_facts import ServerFactsStore
from xmpp_clinic.report.sessions import ClientSessions
from xmpp_clinic.retention.scheduler import PurgeScheduler
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.store.changes import ChangeWatcher
from xmpp_clinic.store.models import GatewayEvent
from xmpp_clinic.threads import ThreadService
from xmpp_clinic.xmpp import device_commands
from xmpp_clinic.xmpp.client_versions import ClientVersions
from xmpp_clinic.xmpp.commands import AdminCommands
from xmpp_clinic.xmpp.component import ClinicComponent
from xmpp_clinic.xmpp.delivery import DeliveryTracker
from xmpp_clinic.xmpp.delivery import attach_commands as attach_delivery_commands
from xmpp_clinic.xmpp.device_upkeep import DeviceUpkeep
from xmpp_clinic.xmpp.history import JoinHistory
from xmpp_clinic.xmpp.mam import ThreadArchive
from xmpp_clinic.xmpp.muc_admin import MemberLists
from xmpp_clinic.xmpp.parts import PartTracker
from xmpp_clinic.xmpp.pep import ComponentPep, DeviceDiscovery
from xmpp_clinic.xmpp.privilege import Privileges
from xmpp_clinic.xmpp.records_member import RecordsPart
from xmpp_clinic.xmpp.relay import Relay
from xmpp_clinic.xmpp.roster_sync import RosterSync
from xmpp_clinic.xmpp.search import DirectorySearch
from xmpp_clinic.xmpp.selfping import SelfPing
from xmpp_clinic.xmpp.server_facts import ServerFactsProbe
from xmpp_clinic.xmpp.thread_disco import ThreadDisco
from xmpp_clinic.xmpp.threads import ThreadHost

log = logging.getLogger(__name__)

# How often administrative changes (CLI) are picked up when no message arrives.
CHANGE_POLL_SECONDS = 1.0
# How long shutdown waits for archive commits in flight before closing the store.
DRAIN_SECONDS = 15.0


class Gateway:
    """One running gateway instance; composition root of every service.

    Every thread message passes the policy :class:`Pipeline` (membership -> e2e ->
    devices; II.1, I.4, I.5, III.3, IV.2) unless tests hand in another ``policy``.
    """

    def __init__(self, settings: Settings, *, policy: MessagePolicy | None = None) -> None:
        self.settings = settings
        self.store = Store(settings.store.url)
        self.component = ClinicComponent(settings)
        self.changes = ChangeWatcher(self.store)
        self.threads = ThreadService(
            self.store,
            user_domains=settings.xmpp.user_domains,
            directory=settings.directory is not None,
            records_jid=member_jid(settings.records.localpart, settings.xmpp.component_jid),
        )
        self.archive = MessageArchive(self.store)
        self.audit_log = AuditLog(self.store)
        self.registry = DeviceRegistry(self.store, settings.policy)
        self.discovery = DeviceDiscovery(
            ComponentPep(self.component),
            self.registry,
            refresh_seconds=settings.policy.device_refresh_seconds,
        )
        self.pipeline = Pipeline(
            settings.policy, self.registry, discovery=self.discovery.refresh, audit=self.audit_log
        )
        self.thread_host = ThreadHost(
            self.component, settings, self.threads, refresh=self.changes.refresh
        )
        # Outdated clients are asked for their version on join and, with
        # clients.outdated = "refuse", refused before the pipeline (I.13, III.2).
        self.client_versions = ClientVersions(
            self.thread_host, ClientSessions(self.store), settings.clients
        )
        # Message completeness (II.2): part sets checked after the pipeline, delivery
        # tracked for every accepted message.
        self.parts = PartTracker(
            self.thread_host, self.archive, PartSets(self.store), settings.parts
        )
        self.delivery = DeliveryTracker(self.thread_host, Deliveries(self.store), settings.delivery)
        # The documentation member (I.6) decrypts its copy once the pipeline and the
        # part check accepted a message, and refuses it if the copy cannot be stored.
        self.records = RecordsPart(
            self.thread_host, settings.records, self.store, ComponentPep(self.component)
        )
        inner = self.records.gate(self.parts.gate(policy or self.pipeline))
        self.policy: MessagePolicy = self.client_versions.gate(self.delivery.gate(inner))
        self.reports = ReportScheduler(settings, self.store)
        # At every connect the server is asked what the report needs of it (IV.2, I.3).
        self.server_facts = ServerFactsProbe(
            self.component, ServerFactsStore(self.store), user_domains=settings.xmpp.user_domains
        )
        # Retention runs inside the gateway on its schedule (I.7, IV.8); an erasure that
        # re-hashed a chain tells the archive to read its heads again.
        self.purge = PurgeScheduler(self.store, settings)
        self.changes.on_change("archive", self.archive.forget_heads)
        self.devices = DeviceUpkeep(
            self.component,
            self.registry,
            self.discovery,
            self._members,
            seen=self.pipeline.drain_seen,
        )
        self.changes.on_change("threads", self.thread_host.reload)
        self.changes.on_change("threads", self.records.notices.check)
        self.changes.on_change("devices", self.pipeline.reload)
        self.changes.on_change("devices", self.devices.devices_changed)
        self.thread_host.on_member_arrival(self._member_arrived)
        self.component.add_event_handler("session_start", self.devices.online)
        for part in (
            self.thread_host,
            # Each member's copy carries only that member's keys (issue 13, II.3); the
            # relay and MAM tell delivery tracking who got what (II.2).
            Relay(
                self.thread_host,
                self.archive,
                self.policy,
                devices=self.pipeline,
                archived=self.records.archived,
                delivery=self.delivery,
            ),
            MemberLists(self.thread_host),
            ThreadDisco(self.thread_host),
            ThreadArchive(
                self.thread_host, self.archive, devices=self.pipeline, delivery=self.delivery
            ),
            JoinHistory(self.thread_host, self.archive, devices=self.pipeline),
            SelfPing(self.thread_host),
            AdminCommands(self.thread_host),
            self.client_versions,
            self.records,
            self.server_facts,
        ):
            part.attach()
        self.component.add_shutdown_hook(self.server_facts.stop)
        device_commands.attach(self.component, self.registry)
        attach_delivery_commands(self.thread_host, self.delivery)
        self.component.add_shutdown_hook(self.thread_host.shutdown)
        self.directory_sync = self._attach_directory()
        self.bridge: BridgeService | None = None
        self._poller: asyncio.Task[None] | None = None

    def _attach_directory(self) -> DirectorySync | None:
        """With ``[directory]``: roster push, search and the periodic LDAP sync (IV.2, I.3).

        Without it the gateway runs in the small deployment mode: members typed in by
        hand, nothing pushed to rosters, no search.
        """
        ds = self.settings.directory
        if ds is None:
            return None
        directory = DirectoryService(
            self.store, max_removal_share=ds.max_removal_share, registry=self.registry
        )
        privileges = Privileges(self.component, user_domains=self.settings.xmpp.user_domains)
        api = EjabberdRosterApi(ds.ejabberd_api_url) if ds.ejabberd_api_url else None
        rosters = RosterSync(
            self.component,
            privileges,
            directory.snapshot,
            lambda: self.thread_host.book,
            group=ds.roster_group,
            api=api,
        )
        privileges.attach()
        rosters.attach()
        DirectorySearch(self.component, directory.snapshot).attach()
        self.changes.on_change("directory", rosters.changed)
        self.changes.on_change("threads", rosters.changed)
        self.component.add_shutdown_hook(rosters.stop)
        self.component.add_shutdown_hook(privileges.stop)
        if ds.ldap is None or ds.sync_interval_minutes is None:
            return None
        ldap, domains = ds.ldap, frozenset(self.settings.xmpp.user_domains)
        return DirectorySync(
            directory,
            lambda: read_ldap(ldap, domains),
            interval_seconds=ds.sync_interval_minutes * 60,
            source=f"ldap:{ldap.url}",
        )

    async def start(self) -> None:
        """Migrate the store, then connect; the store must work before anything is relayed."""
        if self.settings.policy.device_approval == "all":
            log.warning(
                "demo/test mode: every device is approved",
                extra={"setting": "policy.device_approval"},
            )
        await self.store.migrate()
        await self.records.start()
        await self._record("start")
        await self._start_bridge()
        self.reports.start()
        await self.thread_host.load()
        self.parts.start()
        self.delivery.start()
        await self.changes.refresh()
        self._poller = asyncio.ensure_future(self._poll_changes())
        if self.directory_sync is not None:
            self.directory_sync.start()
        self.devices.start()
        self.purge.start()
        self.component.start()

    async def stop(self) -> None:
        await self.parts.stop()
        await self.delivery.stop()
        await self.purge.stop()
        if self.directory_sync is not None:
            await self.directory_sync.stop()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        await self.devices.stop()
        await self.reports.stop()
        await self.component.stop()
        if self.bridge is not None:
            await self.bridge.stop()
        await self._drain_archive()
        await self.records.stop()
        with contextlib.suppress(Exception):
            await self._record("stop")
        await self.store.close()

    async def _start_bridge(self) -> None:
        """The HIS bridge (I.6), when any of its sides is configured: the HTTP API and
        FHIR, the HL7 MDM outbox, the ADT listener."""
        b = self.settings.bridge
        if not (b.enabled or b.hl7.host or b.adt.listen):
            return
        copies = await open_copies(self.store, self.settings.records.key_file)
        self.bridge = BridgeService(b, self.store, copies)
        await self.bridge.start()

    async def _drain_archive(self) -> None:
        """Let the archive's group commit finish before the store closes (II.2): every
        message accepted before shutdown is committed, or its sender was refused."""
        try:
            await asyncio.wait_for(self.archive.drain(), DRAIN_SECONDS)
        except TimeoutError:
            log.error("archive commits still pending at shutdown; closing the store anyway")

    async def _poll_changes(self) -> None:
        """Apply CLI changes within about a second even when nobody sends (IV.2)."""
        while True:
            await asyncio.sleep(CHANGE_POLL_SECONDS)
            try:
                await self.changes.refresh()
            except StoreUnavailable:
                log.warning("store unavailable; membership changes not refreshed")
            except Exception:
                log.exception("applying administrative changes failed")

    async def _members(self) -> set[str]:
        """Every member of every thread: whose devices the periodic refresh reads (I.4)."""
        return {
            member.jid
            for thread in self.thread_host.book
            for member in thread.members
            if member.jid != self.records.jid  # the gateway's own device: nothing to discover
        }

    def _member_arrived(self, jid: str) -> None:
        if jid != self.records.jid:
            self.devices.member_arrived(jid)

    async def _record(self, kind: str) -> None:
        async with self.store.session() as session:
            session.add(GatewayEvent(kind=kind, version=__version__))


async def run_gateway(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down cleanly."""
    gateway = Gateway(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await gateway.start()
    log.info(
        "gateway started",
        extra={"component": settings.xmpp.component_jid, "store": gateway.store.backend},
    )
    try:
        await stop.wait()
    finally:
        log.info("gateway stopping")
        await gateway.stop()
