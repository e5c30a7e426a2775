"""Stanza-level tests without a server: SlixTest in component mode, waiting on events.

slixmpp's ``stream_start(mode="component")`` builds a bare ComponentXMPP; the gateway's
behaviour lives in ClinicComponent and the services attached to it, so
:class:`ComponentTest` puts a real ClinicComponent on slixmpp's mock transport instead.
Literal XML in (``self.recv``), literal XML out (``self.send``).

Nothing here sleeps for a fixed time. :meth:`StanzaTest.settle` runs the event loop until
every task a stanza started has finished (store work in aiosqlite's thread included) and
slixmpp's send queue is empty; after that, whatever the component will send is already
on the mock socket, so reading it needs no timeout and "nothing was sent" is a fact,
not a guess after half a second.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import ssl
import tempfile
import xml.etree.ElementTree as ET
import xml.parsers.expat
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from unittest import mock

from slixmpp.test import SlixTest
from slixmpp.test.mocksocket import TestSocket
from slixmpp.test.slixtest import TestTransport

from xmpp_clinic.config import Settings, parse_settings
from xmpp_clinic.store import Store
from xmpp_clinic.xmpp.component import ClinicComponent

T = TypeVar("T")

COMPONENT = "clinic.hospital.test"
STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
# How long settle() lets a stanza's work run before the test fails: far above the few
# milliseconds it takes, so only a handler that never ends reaches it.
SETTLE_LIMIT = 5.0


def _idle(task: asyncio.Task[Any]) -> bool:
    """A task that only waits on an event (a waiter such as slixmpp's wait for a stream
    event, left by an earlier test on the shared loop) is not work in progress."""
    return task.get_coro().__qualname__ == "Event.wait"  # type: ignore[union-attr]


_templates: dict[str, Path] = {}


class _LoadedOnce(ssl.SSLContext):
    """A client TLS context whose CA store is loaded once per test run.

    slixmpp builds a TLS context for every stream it creates and loads the system CA
    store into it (about 50 ms); a component on the mock transport never uses it.
    """

    _loaded = False

    def set_default_verify_paths(self) -> None:
        if not self._loaded:
            super().set_default_verify_paths()
            self._loaded = True


_shared_tls = _LoadedOnce(ssl.PROTOCOL_TLS_CLIENT)


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def migrated_store(
    path: Path, seed: Callable[[Store], Awaitable[object]] | None = None
) -> Store:
    """A store at ``path`` with every migration applied and ``seed`` run on it.

    Migrating and seeding commit to disk (about 100 ms); the first call for each ``seed``
    builds a template once per test run and every call copies it, so each test still
    gets a database of its own.
    """
    key = "" if seed is None else f"{seed.__module__}.{seed.__qualname__}"
    if key not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="xmpp-clinic-unit-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        template = Store(sqlite_url(folder / "template.db"))
        await template.migrate()
        if seed is not None:
            await seed(template)
        await template.close()
        _templates[key] = folder / "template.db"
    shutil.copyfile(_templates[key], path)
    return Store(sqlite_url(path))


def make_settings(tmp: Path, **sections: dict[str, Any]) -> Settings:
    """Settings for a component on the mock stream; ``sections`` override defaults."""
    data: dict[str, Any] = {
        "xmpp": {
            "component_jid": COMPONENT,
            "secret": "test-secret",
            "user_domains": ["hospital.test"],
        },
        "store": {"url": sqlite_url(tmp / "unit.db")},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return parse_settings(data, tmp)


class StanzaTest(SlixTest):
    """SlixTest whose reads wait for the component to finish instead of sleeping."""

    # Compare sent stanzas as literal XML by default (see send()).
    literal: ClassVar[bool] = True
    _waited_on: set[asyncio.Future[Any]]
    _tls: ClassVar[Any]
    _transport: ClassVar[Any]

    @classmethod
    def setUpClass(cls) -> None:
        super().setUpClass()
        cls._tls = mock.patch.object(ssl, "create_default_context", lambda: _shared_tls)
        cls._tls.start()
        # stream_start() builds slixmpp's mock transport: one stanza per read there too.
        cls._transport = mock.patch("slixmpp.test.slixtest.TestTransport", _StanzaTransport)
        cls._transport.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls._transport.stop()
        cls._tls.stop()
        super().tearDownClass()

    def run(self, result: Any = None) -> Any:
        # Tasks already pending on the shared loop were left by earlier tests (slixmpp
        # keeps a send loop per stream): not this test's to wait for.
        try:
            pending = asyncio.all_tasks(asyncio.get_event_loop())
        except RuntimeError:  # no loop yet: slixmpp makes one when the stream is built
            pending = set()
        self._waited_on = {task for task in pending if not task.done()}
        return super().run(result)

    def started(self, work: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
        """Start ``work`` as a task the test waits on itself (e.g. an iq awaiting the
        answer the test is about to feed in), so settle() does not wait for it."""
        future = asyncio.ensure_future(work)
        self._waited_on.add(future)
        return future

    def settle(self) -> None:
        """Run the loop until no task is left running, then flush the send queue.

        Every handler the component started (and the store work it awaits in aiosqlite's
        thread) finishes within milliseconds; a task still running after
        :data:`SETTLE_LIMIT` seconds fails the test.
        """

        async def quiet() -> None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + SETTLE_LIMIT
            ignored = {asyncio.current_task(), *self._waited_on}
            while True:
                running = [
                    t
                    for t in asyncio.all_tasks()
                    if t not in ignored and not t.done() and not _idle(t)
                ]
                if not running:
                    return
                if loop.time() > deadline:
                    names = sorted(t.get_coro().__qualname__ for t in running)  # type: ignore[union-attr]
                    raise AssertionError(f"tasks still running after settle(): {names}")
                # A short real sleep, not sleep(0): aiosqlite's thread needs the GIL.
                await asyncio.sleep(0.0005)

        self.run_coro(quiet())
        self.wait_for_send_queue()

    def recv_settled(self, xml: str) -> None:
        """Receive ``xml`` and wait until the component has done everything it causes."""
        self.recv(xml)
        self.settle()

    def send(
        self,
        data: str | None,
        defaults: list[str] | None = None,
        use_values: bool | None = None,
        timeout: float = 0,
        method: Any = "exact",
    ) -> None:
        """Compare the next stanza sent with ``data`` (None: nothing was sent).

        As literal XML unless the class says otherwise: slixmpp's default compares
        parsed values, which ignore elements no plugin knows, such as occupant-id. The
        component has settled first, so the stanza is there or will never come: no
        timeout.
        """
        self.settle()
        values = not self.literal if use_values is None else use_values
        super().send(data, defaults, values, timeout, method)

    def next_sent(self) -> ET.Element:
        """The next stanza the component sent, parsed."""
        self.settle()
        socket = self.xmpp.socket
        assert isinstance(socket, TestSocket)
        raw = socket.next_sent()
        assert raw is not None, "nothing was sent"
        text = raw if isinstance(raw, str) else raw.decode()
        # Stanzas on a component stream carry the stream namespace implicitly.
        return ET.fromstring(
            text.replace(" ", ' xmlns="jabber:component:accept" ', 1)
            if "xmlns=" not in text.split(">", 1)[0]
            else text
        )

    def drain(self) -> None:
        """Drop everything sent so far (for tests about later steps)."""
        self.settle()
        socket = self.xmpp.socket
        assert isinstance(socket, TestSocket)
        while socket.next_sent() is not None:
            pass

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


def stanzas_of(data: str | bytes) -> list[bytes]:
    """The top-level elements of one write, each as written; a write that is not a run
    of whole elements (the stream header) stays as it is."""
    raw = data.encode() if isinstance(data, str) else data
    starts: list[int] = []
    depth = 0
    parser = xml.parsers.expat.ParserCreate()

    def opened(_name: str, _attrs: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if depth == 2:  # below the wrapper
            starts.append(parser.CurrentByteIndex - len(b"<w>"))

    def closed(_name: str) -> None:
        nonlocal depth
        depth -= 1

    parser.StartElementHandler = opened
    parser.EndElementHandler = closed
    try:
        parser.Parse(b"<w>" + raw + b"</w>", True)
    except xml.parsers.expat.ExpatError:
        return [raw]
    if len(starts) < 2:
        return [raw]
    return [raw[a:b] for a, b in zip(starts, [*starts[1:], len(raw)], strict=True)]


class _StanzaTransport(TestTransport):
    """slixmpp's mock transport, one stanza per read: the relay writes all copies of a
    message at once (one system call), tests read them one by one."""

    def write(self, data: str | bytes) -> int:
        for stanza in stanzas_of(data):
            self.socket.send(stanza)
        return len(data)


class ComponentTest(StanzaTest):
    """Base class: ``self.start(component)`` then ``self.recv(...)`` / ``self.send(...)``."""

    literal = False  # slixmpp's value comparison, unless a test asks for literal XML

    def start(self, component: ClinicComponent) -> ClinicComponent:
        self.mode = "component"
        self.xmpp = component
        component._always_send_everything = True
        component.connection_made(_StanzaTransport(component))
        component.session_bind_event.set()
        component.default_lang = None
        component.peer_default_lang = None
        counter = iter(range(1, 1_000_000))
        component.new_id = lambda: str(next(counter))
        component.data_received(component.stream_header)
        self.wait_for_send_queue()
        assert isinstance(component.socket, TestSocket)
        component.socket.next_sent()  # our stream header
        component.socket.next_sent()  # the handshake
        component.use_message_ids = False
        component.use_presence_ids = False
        return component
