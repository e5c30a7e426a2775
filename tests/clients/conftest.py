"""Fixtures for the client-compatibility suite: a real server of each kind and a care
thread with a Profanity user and a slixmpp-omemo member on it (see ward.py).

Profanity and tmux come from Debian's packages (``make deps``). A missing binary is a
failure, not a skip: a skipped compatibility test proves nothing (CI installs both).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from tests.clients.profanity import INSTALL_HINT, missing_binaries
from tests.clients.ward import Ward
from xmpp_clinic.dev.servers import DevServer, start_server

SERVER_KINDS = ("prosody", "ejabberd")


@pytest.fixture(scope="session", params=SERVER_KINDS)
def client_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """A private server of each kind for the client tests of the session."""
    missing = missing_binaries()
    if missing:
        pytest.fail(f"{missing} not installed: {INSTALL_HINT}")
    server = start_server(request.param, tmp_path_factory.mktemp(f"clients-{request.param}"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def ward(
    client_server: DevServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Ward]:
    """One care thread per server and test module, shared by its tests in file order."""
    ward = await Ward.open(client_server, tmp_path_factory.mktemp(f"ward-{client_server.kind}"))
    try:
        yield ward
    finally:
        await ward.close()
