"""A bare c2s XMPP client that sends any bytes and keeps every byte it receives.

slixmpp clients parse every address they receive with slixmpp's JID class, so they would
drop their own stream on the very stanzas this suite sends. This client does only what a
hostile (or careless) user's client needs: open a plaintext stream, SASL PLAIN, bind a
resource, then write raw XML. Everything the server sends is kept twice: as bytes (to scan
for marker texts exactly as they arrived) and as parsed top-level stanzas (to find the
answer to a stanza). Tests only: the dev servers' c2s ports are plaintext on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, cast
from xml.sax.saxutils import quoteattr

NS_STREAM = "http://etherx.jabber.org/streams"
NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind"
NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_CLIENT = "jabber:client"
LOGIN_TIMEOUT = 20.0
_ids = itertools.count(1)

Predicate = Callable[[ET.Element], bool]


class LoginError(RuntimeError):
    """The server refused the login or the resource."""


class Server(Protocol):
    """What the client needs from a dev server."""

    host: str
    c2s_port: int
    domain: str


def local(tag: str) -> str:
    """The local name of an ElementTree tag."""
    return tag.rsplit("}", 1)[-1]


def error_condition(stanza: ET.Element) -> str | None:
    """The defined condition of an error stanza (``jid-malformed``, ...), else None."""
    if stanza.get("type") != "error":
        return None
    for error in stanza:
        if local(error.tag) == "error":
            for child in error:
                if child.tag.startswith(f"{{{NS_STANZAS}}}") and local(child.tag) != "text":
                    return local(child.tag)
            return "undefined-condition"
    return "undefined-condition"


def error_text(stanza: ET.Element) -> str:
    """The human-readable text of an error stanza ("" if none)."""
    for error in stanza:
        if local(error.tag) == "error":
            return error.findtext(f"{{{NS_STANZAS}}}text") or ""
    return ""


@dataclass
class _Waiter:
    predicate: Predicate
    future: asyncio.Future[ET.Element]


@dataclass
class RawClient(asyncio.Protocol):
    """One c2s session. :meth:`login` first, then :meth:`send` and :meth:`wait_for`."""

    user: str
    password: str
    server: Server
    resource: str = "fuzz"
    jid: str = ""  # the full JID bound by the server
    received: list[bytes] = field(default_factory=list, repr=False)
    stanzas: list[ET.Element] = field(default_factory=list, repr=False)
    closed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _transport: asyncio.Transport | None = field(default=None, repr=False)
    _parser: ET.XMLPullParser[ET.Element] | None = field(default=None, repr=False)
    _depth: int = 0
    _waiters: list[_Waiter] = field(default_factory=list, repr=False)

    @property
    def bare(self) -> str:
        return f"{self.user}@{self.server.domain}"

    # ---------------------------------------------------------------- asyncio
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        assert self._parser is not None
        try:
            self._parser.feed(data)
            # Only "start" and "end" events were asked for: (event, element) pairs.
            events = cast(Iterator[tuple[str, object]], self._parser.read_events())
            for event, element in events:
                self._on_event(event, element)
        except ET.ParseError:
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(ConnectionError(f"{self.bare}: stream closed"))
        self._waiters.clear()

    def _on_event(self, event: str, element: object) -> None:
        if event == "start":
            self._depth += 1
            return
        self._depth -= 1
        if self._depth != 1 or not isinstance(element, ET.Element):
            return
        self.stanzas.append(element)
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.predicate(element):
                waiter.future.set_result(element)
                self._waiters.remove(waiter)

    # ------------------------------------------------------------------ stream
    def _open_stream(self) -> None:
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._depth = 0
        self.send_raw(
            f"<?xml version='1.0'?><stream:stream to={quoteattr(self.server.domain)} "
            f"xmlns='{NS_CLIENT}' xmlns:stream='{NS_STREAM}' version='1.0'>"
        )

    async def login(self, *, presence: bool = True) -> RawClient:
        """Connect, authenticate with SASL PLAIN and bind ``resource``; returns self."""
        loop = asyncio.get_running_loop()
        await loop.create_connection(lambda: self, self.server.host, self.server.c2s_port)
        self._open_stream()
        await self.wait_for(lambda s: s.tag == f"{{{NS_STREAM}}}features", LOGIN_TIMEOUT)
        token = base64.b64encode(f"\0{self.user}\0{self.password}".encode()).decode()
        self.send_raw(f"<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{token}</auth>")
        outcome = await self.wait_for(lambda s: s.tag.startswith(f"{{{NS_SASL}}}"), LOGIN_TIMEOUT)
        if local(outcome.tag) != "success":
            raise LoginError(f"{self.bare}: SASL {local(outcome.tag)}")
        self._open_stream()
        features = await self.wait_for(lambda s: s.tag == f"{{{NS_STREAM}}}features", LOGIN_TIMEOUT)
        bound = await self.iq(
            f"<iq type='set' id='{{id}}'><bind xmlns='{NS_BIND}'>"
            f"<resource>{_text(self.resource)}</resource></bind></iq>",
            LOGIN_TIMEOUT,
        )
        if bound.get("type") != "result":
            raise LoginError(f"{self.bare}: bind refused ({error_condition(bound)})")
        self.jid = bound.findtext(f"{{{NS_BIND}}}bind/{{{NS_BIND}}}jid") or ""
        if features.find(f"{{{NS_SESSION}}}session") is not None:
            await self.iq(f"<iq type='set' id='{{id}}'><session xmlns='{NS_SESSION}'/></iq>")
        if presence:
            self.send_raw("<presence/>")
        return self

    def send_raw(self, xml: str) -> None:
        """Write ``xml`` to the stream as it is."""
        if self._transport is None or self._transport.is_closing():
            raise ConnectionError(f"{self.bare}: not connected")
        self._transport.write(xml.encode("utf-8"))

    async def wait_for(self, predicate: Predicate, timeout: float) -> ET.Element:
        """The first stanza from now on for which ``predicate`` holds."""
        if self.closed.is_set():
            raise ConnectionError(f"{self.bare}: stream closed")
        future: asyncio.Future[ET.Element] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(predicate, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def iq(self, template: str, timeout: float = 10.0) -> ET.Element:
        """Send an ``<iq>`` whose ``id`` is ``{id}`` in ``template``; its result or error."""
        iq_id = f"raw{next(_ids)}"
        self.send_raw(template.replace("{id}", iq_id))
        return await self.wait_for(lambda s: local(s.tag) == "iq" and s.get("id") == iq_id, timeout)

    def text_received(self) -> str:
        """Everything received so far, decoded (for marker scans)."""
        return b"".join(self.received).decode("utf-8", errors="replace")

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def close(self) -> None:
        """End the stream politely; abort if the server does not close within a second."""
        if self._transport is None or self._transport.is_closing():
            return
        with contextlib.suppress(ConnectionError):
            self.send_raw("</stream:stream>")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closed.wait(), 1.0)
        self.abort()


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def attr(value: str) -> str:
    """``value`` quoted as an XML attribute value (quotes included)."""
    return quoteattr(value)
