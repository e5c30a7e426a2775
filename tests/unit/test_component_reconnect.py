"""With the server away, the log says where and why once, then about once a minute (I.12).

The attempts themselves go on at the fast capped backoff; coming back is the usual
"component online" line, with the attempts and the time away. The
first tests drive :class:`Outage` with a clock; the last two run the real supervisor
against a closed loopback port and a small fake server that accepts the XEP-0114
handshake.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.unit.harness import COMPONENT, make_settings
from xmpp_clinic.xmpp.component import ClinicComponent, Outage, failure_cause

LOGGER = "xmpp_clinic.xmpp.component"
REFUSED = "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5347)"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == LOGGER]


@pytest.fixture(autouse=True)
def component_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)


@pytest.mark.requirement("II.4")
def test_first_failure_says_where_and_why_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    Outage("127.0.0.1", 5347, clock=Clock()).failed(REFUSED, 0.1)
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert (record.server_host, record.server_port) == ("127.0.0.1", 5347)  # type: ignore[attr-defined]
    assert record.cause == REFUSED  # type: ignore[attr-defined]


@pytest.mark.requirement("II.4")
def test_failures_within_a_minute_say_nothing_more(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("127.0.0.1", 5347, clock=clock)
    for _ in range(59):  # one attempt a second, as with the default backoff cap
        outage.failed(REFUSED, 1.0)
        clock.now += 1
    assert said(caplog) == [("WARNING", "XMPP server not reachable; retrying")]
    assert outage.attempts == 59


@pytest.mark.requirement("II.4")
def test_a_long_outage_is_recalled_about_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage("127.0.0.1", 5347, clock=clock)
    for _ in range(181):  # three minutes
        outage.failed(REFUSED, 1.0)
        clock.now += 1
    reminders = [r for r in caplog.records if r.levelname == "INFO"]
    assert [r.getMessage() for r in reminders] == ["XMPP server still not reachable; retrying"] * 3
    assert [r.attempts for r in reminders] == [61, 121, 181]  # type: ignore[attr-defined]


@pytest.mark.requirement("II.4")
def test_the_end_of_an_outage_says_how_long_and_a_new_one_warns_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = Outage("127.0.0.1", 5347, clock=clock)
    assert outage.ended() == {}  # never away: nothing to add
    outage.failed(REFUSED, 0.1)
    clock.now += 4.5
    outage.failed(REFUSED, 0.2)
    assert outage.ended() == {"attempts": 2, "down_s": 4.5}
    outage.failed(REFUSED, 0.1)
    assert said(caplog) == [("WARNING", "XMPP server not reachable; retrying")] * 2


@pytest.mark.requirement("II.4")
def test_a_refused_secret_is_named_as_the_servers_stream_error() -> None:
    from slixmpp.stanza import StreamError

    error = StreamError()
    error["condition"] = "not-authorized"
    assert failure_cause(error) == "stream error not-authorized"


# ------------------------------------------------------------- the real supervisor


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def until(condition: Callable[[], bool], limit: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never met"
        await asyncio.sleep(0.01)


@pytest.fixture
async def component() -> AsyncIterator[ClinicComponent]:
    with tempfile.TemporaryDirectory() as tmp:
        xmpp = {"server_port": free_port(), "reconnect_max_delay": 0.05}
        gateway = ClinicComponent(make_settings(Path(tmp), xmpp=xmpp))
        yield gateway
        await gateway.stop()


@pytest.mark.requirement("II.4")
async def test_server_down_is_named_once_with_host_port_and_cause(
    component: ClinicComponent, caplog: pytest.LogCaptureFixture
) -> None:
    component.start()
    await until(lambda: component.outage.attempts >= 5)
    assert said(caplog) == [("WARNING", "XMPP server not reachable; retrying")]
    record = caplog.records[0]
    assert record.server_host == "127.0.0.1"  # type: ignore[attr-defined]
    assert record.server_port == component.settings.xmpp.server_port  # type: ignore[attr-defined]
    assert record.cause.startswith("ConnectionRefusedError")  # type: ignore[attr-defined]


async def accept_component(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Just enough of an XMPP server for XEP-0114: stream header, handshake, close."""
    while data := await reader.read(4096):
        if b"<stream:stream" in data:
            writer.write(
                b"<?xml version='1.0'?><stream:stream xmlns:stream="
                b"'http://etherx.jabber.org/streams' xmlns='jabber:component:accept' "
                + f"from='{COMPONENT}' id='fake'>".encode()
            )
        if b"<handshake" in data:
            writer.write(b"<handshake/>")
        if b"</stream:stream>" in data:
            writer.write(b"</stream:stream>")
            break
        await writer.drain()
    writer.close()


@pytest.mark.requirement("II.4")
async def test_reattaching_after_the_server_returns_is_said_once(
    component: ClinicComponent, caplog: pytest.LogCaptureFixture
) -> None:
    component.start()
    await until(lambda: component.outage.attempts >= 2)
    port = component.settings.xmpp.server_port
    server = await asyncio.start_server(accept_component, "127.0.0.1", port)
    async with server:
        await component.wait_online(5)
        assert said(caplog) == [
            ("WARNING", "XMPP server not reachable; retrying"),
            ("INFO", "component online"),
        ]
        back = caplog.records[-1]
        assert back.attempts >= 2 and back.down_s >= 0  # type: ignore[attr-defined]
        await component.stop()
