"""Shared set-up for the stanza-level thread tests: a component, a store, one thread.

Literal XML in, literal XML out (SlixTest in component mode). The store is a real
SQLite file; reads wait until the component has settled (tests/unit/harness.py).
"""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import ClassVar

from tests.unit.harness import COMPONENT, StanzaTest, migrated_store
from xmpp_clinic.archive.messages import MessageArchive
from xmpp_clinic.config import Settings, ThreadSettings, XmppSettings
from xmpp_clinic.omemo import parse_header
from xmpp_clinic.policy.e2e import check_e2e
from xmpp_clinic.policy.verdict import MessageContext, MessagePolicy, Verdict
from xmpp_clinic.store import Store
from xmpp_clinic.threads import ThreadService
from xmpp_clinic.xmpp.commands import AdminCommands
from xmpp_clinic.xmpp.mam import ThreadArchive
from xmpp_clinic.xmpp.muc_admin import MemberLists
from xmpp_clinic.xmpp.occupants import make_occupant_id
from xmpp_clinic.xmpp.relay import Relay
from xmpp_clinic.xmpp.selfping import SelfPing
from xmpp_clinic.xmpp.thread_disco import ThreadDisco
from xmpp_clinic.xmpp.threads import ThreadHost

WARD = f"ward@{COMPONENT}"
ALICE = "alice@hospital.test"
BOB = "bob@hospital.test"
CAROL = "carol@hospital.test"
EVE = "eve@hospital.test"


def oid(bare: str, thread: str = WARD) -> str:
    return make_occupant_id(thread, bare)


async def with_ward(store: Store) -> None:
    """The thread every stanza test starts with: ``ward``, alice and bob members, carol owner."""
    setup = ThreadService(store, user_domains=["hospital.test"])
    await setup.create("ward", "Ward 3", [ALICE, BOB], owner=CAROL)


class EncryptedOnly:
    """A policy double: the e2e check alone (II.1), so relay tests need no device registry.

    The full pipeline (membership -> e2e -> devices) is tested in test_policy_pipeline.py
    and, wired into the gateway, in tests/integration/test_device_policy*.py.
    """

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        return check_e2e(ctx.stanza, parse_header(ctx.stanza))


class ThreadStanzaTest(StanzaTest):
    """A component hosting thread ``ward`` (alice, bob members; carol owner)."""

    history = "none"
    policy: MessagePolicy | None = None
    user_domains: tuple[str, ...] = ("hospital.test",)
    admins: tuple[str, ...] = (CAROL,)
    # What the store holds before each test (built once per run, copied per test).
    seed: ClassVar[Callable[[Store], Awaitable[None]]] = staticmethod(with_ward)

    def setUp(self) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.stream_start(
            mode="component",
            jid=COMPONENT,
            server="hospital.test",
            plugins=["xep_0030", "xep_0004", "xep_0050"],
        )
        self.settings = Settings(
            xmpp=XmppSettings(
                component_jid=COMPONENT,
                user_domains=list(self.user_domains),
                admins=list(self.admins),
            ),
            threads=ThreadSettings(history_for_new_members=self.history),  # type: ignore[arg-type]
        )
        self.store = self.run_coro(migrated_store(Path(self.tmp.name) / "clinic.db", self.seed))
        self.service = ThreadService(self.store, user_domains=self.user_domains)
        self.archive = MessageArchive(self.store)
        self.sid_counter = itertools.count(1)
        self.now = 1000.0  # the host's clock: tests move it to make the book stale
        self.host = ThreadHost(self.xmpp, self.settings, self.service, clock=lambda: self.now)
        assert self.host.journal is not None
        self.host.journal.batch_seconds = 0.0  # settle() waits for the write, not a timer
        for part in (
            self.host,
            Relay(
                self.host,
                self.archive,
                self.policy or EncryptedOnly(),
                new_id=lambda: f"sid-{next(self.sid_counter)}",
            ),
            MemberLists(self.host),
            ThreadDisco(self.host),
            ThreadArchive(self.host, self.archive),
            SelfPing(self.host),
            AdminCommands(self.host),
        ):
            part.attach()
        self.run_coro(self.host.load())
        self.settle()

    def tearDown(self) -> None:
        self.run_coro(self.store.close())
        super().tearDown()
        self.tmp.cleanup()

    def join(self, full_jid: str, nick: str) -> None:
        """Join and drop everything the room sends in response (for tests about later steps)."""
        self.recv_settled(
            f'<presence from="{full_jid}" to="{WARD}/{nick}">'
            '<x xmlns="http://jabber.org/protocol/muc"/></presence>'
        )
        self.drain()
