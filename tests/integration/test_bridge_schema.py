"""schemathesis against the live OpenAPI: no 5xx, every response matches the schema (I.6).

Positive and negative data (``--mode all``): malformed parameters must be 4xx problems.

The bridge runs under uvicorn on loopback with a token holding both scopes; the
schemathesis CLI (a subprocess, so the server's event loop keeps serving) generates
requests from ``/openapi.json``. Bounded: few examples per operation, no shrinking.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from tests.unit.test_bridge_support import documented_store
from xmpp_clinic.bridge.api import BridgeContext
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.http import HttpBridge
from xmpp_clinic.bridge.tokens import TokenBook
from xmpp_clinic.settings.bridge import BridgeSettings

pytestmark = pytest.mark.requirement("I.6")

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


async def test_live_openapi_holds_under_schemathesis(tmp_path: Path) -> None:
    store, copies = await documented_store(tmp_path / "clinic.db")
    token = await TokenBook(store).create("SCHEMA", ["records:read", "audit:read"], actor="test")
    await CaseBook(store).admit("V100", "P42", "ICU", at=None, actor="test")
    await CaseBook(store).bind("icu-bed3", "V100", actor="test")
    ctx = BridgeContext(store, copies, page_limit=20, rate_per_minute=100000)
    bridge = HttpBridge(BridgeSettings(enabled=True, listen="127.0.0.1:0"), ctx)
    await bridge.start()
    try:
        st = Path(sys.executable).with_name("schemathesis")
        process = await asyncio.create_subprocess_exec(
            str(st), "run", f"http://127.0.0.1:{bridge.port}/openapi.json",
            "--checks", CHECKS, "--header", f"Authorization: Bearer {token}",
            "--max-examples", "6", "--phases", "examples,coverage,fuzzing", "--no-shrink",
            "--seed", "1", "--request-timeout", "10", "--mode", "all",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), 120)
    finally:
        await bridge.stop()
        await store.close()
    report = output.decode(errors="replace")
    assert process.returncode == 0, report[-6000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", report)
    assert counts is not None, report[-3000:]
    assert int(counts[1]) == int(counts[2]) > 100  # every operation got real traffic
