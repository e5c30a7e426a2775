"""``xmpp-clinic bridge serve`` as an operator runs it: config, token, curl-like reads (I.6)."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
import tomli_w

pytestmark = pytest.mark.requirement("I.6")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _cli(*args: str) -> tuple[int, str]:
    exe = Path(sys.executable).with_name("xmpp-clinic")
    process = await asyncio.create_subprocess_exec(
        str(exe), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_bridge_serve_answers_with_a_created_token_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = _free_port()
    config = tmp_path / "clinic.toml"
    data = {
        "xmpp": {"component_jid": "clinic.hospital.test", "secret": "s"},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"},
        "bridge": {"enabled": True, "listen": f"127.0.0.1:{port}"},
    }
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    code, out = await _cli(
        "bridge", "token", "create", "--name", "HIS", "--scope", "records:read", "-c", str(config)
    )
    assert code == 0
    token = out.strip()
    exe = Path(sys.executable).with_name("xmpp-clinic")
    server = await asyncio.create_subprocess_exec(
        str(exe), "bridge", "serve", "-c", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(server.stdout.readline(), 60)
        assert line.decode().strip() == f"bridge: API on 127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            assert (await client.get("/threads")).status_code == 401
            reply = await client.get("/threads", headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 200 and reply.json() == {"items": [], "next_cursor": None}
    finally:
        server.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(server.wait(), 30) == 0
    code, out = await _cli("audit", "events", "-c", str(config))
    assert "bridge:anonymous bridge.request [unauthorized]" in out
    assert "bridge:HIS bridge.request [ok]" in out
