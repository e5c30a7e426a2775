"""Shared set-up for the stanza-level thread tests: a component, a store, one thread.

Literal XML in, literal XML out (SlixTest in component mode). The store is a real
SQLite file; ``settle()`` lets the event loop run long enough for aiosqlite's thread.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

from slixmpp.test import SlixTest

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

STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
COMPONENT = "clinic.hospital.test"
WARD = f"ward@{COMPONENT}"
ALICE = "alice@hospital.test"
BOB = "bob@hospital.test"
CAROL = "carol@hospital.test"
EVE = "eve@hospital.test"


def oid(bare: str, thread: str = WARD) -> str:
    return make_occupant_id(thread, bare)


class EncryptedOnly:
    """A policy double: the e2e check alone (II.1), so relay tests need no device registry.

    The full pipeline (membership -> e2e -> devices) is tested in test_policy_pipeline.py
    and, wired into the gateway, in tests/integration/test_device_policy*.py.
    """

    async def evaluate(self, ctx: MessageContext) -> Verdict:
        return check_e2e(ctx.stanza, parse_header(ctx.stanza))


class ThreadStanzaTest(SlixTest):
    """A component hosting thread ``ward`` (alice, bob members; carol owner)."""

    history = "none"
    policy: MessagePolicy | None = None
    user_domains: tuple[str, ...] = ("hospital.test",)
    admins: tuple[str, ...] = (CAROL,)

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
        self.store = Store(f"sqlite+aiosqlite:///{Path(self.tmp.name) / 'clinic.db'}")
        self.run_coro(self.store.migrate())
        setup = ThreadService(self.store, user_domains=["hospital.test"])
        self.run_coro(setup.create("ward", "Ward 3", [ALICE, BOB], owner=CAROL))
        self.service = ThreadService(self.store, user_domains=self.user_domains)
        self.archive = MessageArchive(self.store)
        self.sid_counter = itertools.count(1)
        self.now = 1000.0  # the host's clock: tests move it to make the book stale
        self.host = ThreadHost(self.xmpp, self.settings, self.service, clock=lambda: self.now)
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

    def tearDown(self) -> None:
        self.run_coro(self.store.close())
        super().tearDown()
        self.tmp.cleanup()

    def settle(self, seconds: float = 0.15) -> None:
        """Run the loop in real time so store work done in aiosqlite's thread completes."""
        self.run_coro(asyncio.sleep(seconds))
        self.wait_for_send_queue()

    def send(  # type: ignore[override]
        self, data: str | None, *args: object, use_values: bool = False, **kwargs: object
    ) -> None:
        """Compare the literal XML (the default would compare slixmpp's parsed values, which
        ignore elements no plugin knows, such as occupant-id)."""
        super().send(data, *args, use_values=use_values, **kwargs)  # type: ignore[arg-type]

    def next_sent(self) -> ET.Element:
        """The next stanza the component sent, parsed."""
        self.wait_for_send_queue()
        raw = self.xmpp.socket.next_sent(0.5)
        assert raw is not None, "nothing was sent"
        text = raw if isinstance(raw, str) else raw.decode()
        # Stanzas on a component stream carry the stream namespace implicitly.
        return ET.fromstring(
            text.replace(" ", ' xmlns="jabber:component:accept" ', 1)
            if "xmlns=" not in text.split(">", 1)[0]
            else text
        )

    def expect_error(self, to: str, frm: str, condition: str, stanza_id: str = "") -> ET.Element:
        """The next stanza is an error from ``frm`` to ``to`` with ``condition``.

        (SlixTest's literal comparison mis-handles ``<error/>`` in component streams.)
        """
        sent = self.next_sent()
        assert sent.get("type") == "error", ET.tostring(sent)
        assert (sent.get("to"), sent.get("from")) == (to, frm), ET.tostring(sent)
        if stanza_id:
            assert sent.get("id") == stanza_id
        # slixmpp's own iq errors carry jabber:client on <error>; ours the stream namespace.
        errors = [c for c in sent if c.tag.rsplit("}", 1)[-1] == "error"]
        error = errors[0] if errors else None
        assert error is not None and error.find(f"{{{STANZAS}}}{condition}") is not None, (
            ET.tostring(sent)
        )
        return sent

    def recv_settled(self, xml: str) -> None:
        self.recv(xml)
        self.settle()

    def join(self, full_jid: str, nick: str) -> None:
        """Join and drop everything the room sends in response (for tests about later steps)."""
        self.recv_settled(
            f'<presence from="{full_jid}" to="{WARD}/{nick}">'
            '<x xmlns="http://jabber.org/protocol/muc"/></presence>'
        )
        self.drain()

    def drain(self) -> None:
        self.wait_for_send_queue()
        socket = self.xmpp.socket
        while socket.next_sent(0.05) is not None:
            pass
