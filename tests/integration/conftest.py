"""Fixtures for integration tests: a real Prosody and a real ejabberd on loopback.

Every test that takes ``xmpp_server`` runs once per server kind. A skipped server is a
failure in CI (``.ci/run`` installs both); locally a missing binary fails with the hint
``make deps``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from xmpp_clinic.app import Gateway
from xmpp_clinic.config import Settings, load_settings
from xmpp_clinic.dev.servers import DevServer, start_server, write_gateway_config

SERVER_KINDS = ("prosody", "ejabberd")
PASSWORD = "correct horse battery staple"
_user_ids = itertools.count(1)
CLI_TIMEOUT = 60  # seconds for one xmpp-clinic command


@pytest.fixture(scope="session", params=SERVER_KINDS)
def xmpp_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    """A private server of each kind, shared by the tests of the session."""
    server = start_server(request.param, tmp_path_factory.mktemp(request.param))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_users(xmpp_server: DevServer) -> Callable[..., list[str]]:
    """Register fresh users: ``make_users("alice", "bob")`` -> their bare JIDs (unique per test)."""

    def make(*names: str) -> list[str]:
        n = next(_user_ids)
        return xmpp_server.register_many({f"{name}{n}": PASSWORD for name in names})

    return make


@dataclass
class GatewayHandle:
    """A gateway running in the test's event loop, plus its config for CLI calls."""

    gateway: Gateway
    settings: Settings
    config_path: Path
    server: DevServer
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``xmpp-clinic ARGS --config <this gateway's config>`` in a subprocess.

        Only off the event loop (a worker thread): the gateway runs in the test's loop, and
        a loop frozen while it holds SQLite's write lock leaves the CLI waiting on that lock
        until it fails with "store busy". Async code uses :meth:`acli`.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise AssertionError(
                "GatewayHandle.cli blocks the event loop the gateway runs in; "
                "use `await gw.acli(...)`"
            )
        proc = subprocess.run(
            self._command(args),
            capture_output=True,
            text=True,
            env=self._env(),
            timeout=CLI_TIMEOUT,
        )
        return self._checked(proc, args, check)

    async def acli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """:meth:`cli` without blocking the event loop, so the gateway keeps running."""
        command = self._command(args)
        process = await asyncio.create_subprocess_exec(
            *command,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise subprocess.TimeoutExpired(command, CLI_TIMEOUT) from None
        assert process.returncode is not None
        proc = subprocess.CompletedProcess(
            command, process.returncode, stdout.decode(), stderr.decode()
        )
        return self._checked(proc, args, check)

    def _command(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "xmpp_clinic", *args]

    def _env(self) -> dict[str, str]:
        return {**os.environ, "XMPP_CLINIC_CONFIG": str(self.config_path)}

    @staticmethod
    def _checked(
        proc: subprocess.CompletedProcess[str], args: tuple[str, ...], check: bool
    ) -> subprocess.CompletedProcess[str]:
        if check and proc.returncode != 0:
            raise AssertionError(
                f"xmpp-clinic {' '.join(args)} exited {proc.returncode}: {proc.stderr}"
            )
        return proc

    @property
    def jid(self) -> str:
        return self.settings.xmpp.component_jid


def write_config(server: DevServer, directory: Path, **sections: dict[str, Any]) -> Path:
    """A test gateway's config: quick reconnects and DEBUG logs unless ``sections`` say
    otherwise (the logs must stay free of content at DEBUG too)."""
    defaults: dict[str, dict[str, Any]] = {
        "xmpp": {"reconnect_max_delay": 0.5},
        "logging": {"level": "DEBUG"},
    }
    for name, values in sections.items():
        defaults[name] = {**defaults.get(name, {}), **values}
    return write_gateway_config(server, directory, **defaults)


@pytest.fixture
async def gateway_factory(
    xmpp_server: DevServer, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[GatewayHandle]]]:
    """Start gateways on ``xmpp_server``: ``await gateway_factory(policy={...})``."""
    started: list[Gateway] = []

    async def start(**sections: dict[str, Any]) -> GatewayHandle:
        directory = tmp_path / f"gw{len(started)}"
        directory.mkdir()
        path = write_config(xmpp_server, directory, **sections)
        settings = load_settings(path)
        gateway = Gateway(settings)
        started.append(gateway)
        await gateway.start()
        await gateway.component.wait_online(timeout=15)
        return GatewayHandle(gateway, settings, path, xmpp_server)

    yield start
    # The next test's gateway waits until it is online (wait_online above): should the
    # server still hold this component session, that gateway retries until it is gone.
    for gateway in reversed(started):
        await gateway.stop()
