"""Server facts asked of the running server, shown in the report (IV.2, II.1, I.3, IV.8).

A gateway connects to a real Prosody and a real ejabberd, once with mod_clinic_confine
loaded as the operator snippet says (test_confine's servers) and once without. At
connect it asks the user domain's disco#info and records what it learnt; then
``xmpp-clinic report`` (no --server-config) shows confinement met from the live server,
or not loaded and flagged at the top.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import GatewayHandle, write_config
from tests.integration.test_confine import ConfinedEjabberd, ConfinedProsody
from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.dev.servers import DevServer
from xmpp_clinic.dev.servers.prosody import PRIVILEGE_MODULE
from xmpp_clinic.report.server_facts import ServerFactsStore
from xmpp_clinic.xmpp.server_facts import ServerFactsProbe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture(scope="module", params=("prosody", "ejabberd"))
def confined_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DevServer]:
    run_dir = tmp_path_factory.mktemp(f"facts-confined-{request.param}")
    cls = ConfinedProsody if request.param == "prosody" else ConfinedEjabberd
    server: DevServer = cls(run_dir=run_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _privilege_expected(server: DevServer) -> bool:
    """The dev servers grant the gateway privileges (Prosody: when mod_privilege exists)."""
    return server.kind != "prosody" or PRIVILEGE_MODULE.exists()


@contextlib.asynccontextmanager
async def live_gateway(
    server: DevServer, tmp_path: Path
) -> AsyncIterator[tuple[GatewayHandle, ServerFactsProbe]]:
    """A gateway on ``server`` that has observed the server once at connect."""
    path = write_config(server, tmp_path)
    gateway = Gateway(load_settings(path))
    # The gateway's own probe when app.py wires it; else one attached as app.py would.
    probe: ServerFactsProbe | None = getattr(gateway, "server_facts", None)
    if probe is None:
        probe = ServerFactsProbe(
            gateway.component,
            ServerFactsStore(gateway.store),
            user_domains=gateway.settings.xmpp.user_domains,
        )
        probe.attach()
    await gateway.start()
    try:
        await gateway.component.wait_online(timeout=15)
        await asyncio.wait_for(probe.observed.wait(), 40)
        yield GatewayHandle(gateway, gateway.settings, path, server), probe
    finally:
        await probe.stop()
        await gateway.stop()


async def _report_of_live_gateway(server: DevServer, tmp_path: Path) -> dict[str, Any]:
    """Start a gateway, let it observe the server at connect, then run the report CLI."""
    async with live_gateway(server, tmp_path) as (handle, _probe):
        empty = tmp_path / "no-tests"
        empty.mkdir()
        done = await handle.acli("report", "--format", "json", "--tests", str(empty))
        data: dict[str, Any] = json.loads(done.stdout)
        return data


def _finding(data: dict[str, Any], requirement: str) -> dict[str, Any]:
    (found,) = [f for f in data["findings"] if f["id"] == requirement]
    return found


def _evidence(finding: dict[str, Any]) -> dict[str, str]:
    return {e["label"]: e["value"] for e in finding["evidence"]}


@pytest.mark.requirement("IV.2", "II.1", "I.3")
async def test_confinement_loaded_is_met_from_the_live_server(
    confined_server: DevServer, tmp_path: Path
) -> None:
    data = await _report_of_live_gateway(confined_server, tmp_path)
    iv2 = _finding(data, "IV.2")
    assert iv2["status"] == "met", iv2
    assert "(live server)" in iv2["reason"]
    seen = _evidence(iv2)
    assert seen["confinement module loaded"] == "yes"
    assert seen["confinement module loaded: source"].startswith("live server, observed ")
    assert seen["XEP-0356 privilege granted"] == (
        "yes" if _privilege_expected(confined_server) else "no"
    )
    assert not any("confine" in w for w in data["weakened"]), data["weakened"]
    assert _finding(data, "II.1")["status"] == "met"
    i3 = _evidence(_finding(data, "I.3"))
    assert i3["XEP-0356 privilege granted: source"].startswith("live server")


@pytest.mark.requirement("IV.2", "II.1", "IV.8")
async def test_without_the_module_confinement_is_not_met_and_flagged(
    xmpp_server: DevServer, tmp_path: Path
) -> None:
    data = await _report_of_live_gateway(xmpp_server, tmp_path)
    iv2 = _finding(data, "IV.2")
    assert iv2["status"] == "partly"
    assert "mod_clinic_confine not loaded" in iv2["reason"] and "(live server)" in iv2["reason"]
    assert _evidence(iv2)["confinement module loaded"] == "no"
    assert any("mod_clinic_confine is not loaded" in w for w in data["weakened"])
    assert _finding(data, "II.1")["status"] == "partly"
    # Expiry is not observable live: without --server-config IV.8 stays partly and says so.
    iv8 = _finding(data, "IV.8")
    sources = _evidence(iv8)
    assert sources["server advertises MAM: source"].startswith("live server")
    assert sources["upload service"] == xmpp_server.upload_jid  # found in disco#items
    assert "not observable from the live server" in sources["server archive expiry: source"]
    assert iv8["status"] == "partly" and "not checked" in iv8["reason"]


@pytest.mark.requirement("IV.2")
async def test_the_server_is_asked_again_after_a_reconnect(
    xmpp_server: DevServer, tmp_path: Path
) -> None:
    async with live_gateway(xmpp_server, tmp_path) as (handle, probe):
        facts = ServerFactsStore(handle.gateway.store)
        first = {(o.domain, o.fact): o.observed_at for o in await facts.read()}
        assert first, "nothing recorded at connect"
        component = handle.gateway.component
        gone = asyncio.Event()
        component.add_event_handler("disconnected", lambda _reason: gone.set())
        await asyncio.to_thread(xmpp_server.stop)
        await asyncio.wait_for(gone.wait(), 10)
        await asyncio.to_thread(xmpp_server.start)
        await component.wait_online(timeout=20)
        await asyncio.sleep(0)  # session_start has cleared the last round's flag
        await asyncio.wait_for(probe.observed.wait(), 40)
        again = {(o.domain, o.fact): o.observed_at for o in await facts.read()}
    assert again.keys() == first.keys()
    assert all(again[key] > first[key] for key in first)
