"""``xmpp-clinic bridge token|outbox|bind`` and ``threads create --case`` (I.6, I.12).

Tokens are shown once and kept hashed; a thread binds to a HIS case by either verb.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import tomli_w
from sqlalchemy import text
from typer.testing import CliRunner

from tests.unit.test_bridge_support import documented_store
from xmpp_clinic.bridge.cases import CaseBook
from xmpp_clinic.bridge.outbox import Outbox
from xmpp_clinic.bridge.records import NoDocumentation
from xmpp_clinic.cli import app
from xmpp_clinic.settings.bridge import Hl7PushSettings
from xmpp_clinic.store import Store

pytestmark = pytest.mark.requirement("I.6", "I.12")

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    async def seed() -> None:
        store, _ = await documented_store(tmp_path / "clinic.db")
        await store.close()

    asyncio.run(seed())
    path = tmp_path / "clinic.toml"
    data = {
        "xmpp": {
            "component_jid": "clinic.hospital.test",
            "secret": "s",
            "user_domains": ["hospital.test"],
        },
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"},
        "bridge": {"enabled": True, "hl7": {"host": "127.0.0.1", "port": 9}},
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_token_is_shown_once_and_stored_hashed(config: Path) -> None:
    code, out = cli(
        "bridge", "token", "create", "--name", "HIS", "--scope", "records:read", "-c", str(config)
    )
    assert code == 0
    token = out.splitlines()[0]
    assert token.startswith("xc_") and len(token) > 40
    db = (config.parent / "clinic.db").read_bytes()
    assert token.encode() not in db

    code, out = cli("bridge", "token", "list", "--json", "-c", str(config))
    (listed,) = json.loads(out)
    assert listed["name"] == "HIS" and listed["scopes"] == ["records:read"]
    assert token not in out


def test_unknown_scope_is_bad_usage(config: Path) -> None:
    code, out = cli(
        "bridge", "token", "create", "--name", "HIS", "--scope", "records:write", "-c", str(config)
    )
    assert code == 2
    assert "records:read, audit:read" in out


def test_revoke_marks_the_token(config: Path) -> None:
    cli("bridge", "token", "create", "--name", "HIS", "--scope", "audit:read", "-c", str(config))
    code, _ = cli("bridge", "token", "revoke", "HIS", "-c", str(config))
    assert code == 0
    _, out = cli("bridge", "token", "list", "--json", "-c", str(config))
    assert json.loads(out)[0]["revoked_at"] is not None
    code, out = cli("bridge", "token", "revoke", "NOBODY", "-c", str(config))
    assert code == 1 and "no token named 'NOBODY'" in out


def test_outbox_lists_waiting_documents(config: Path) -> None:
    code, out = cli("bridge", "outbox", "-c", str(config))
    assert (code, out.strip()) == (0, "outbox empty")

    async def queue_and_fail() -> None:
        store = Store(f"sqlite+aiosqlite:///{config.parent / 'clinic.db'}")
        outbox = Outbox(store, NoDocumentation(), Hl7PushSettings(host="127.0.0.1", port=9))
        await outbox.enqueue("icu-bed3", actor="test")
        async with store.session() as session:  # what a refused connection leaves
            await session.execute(
                text("UPDATE bridge_outbox SET attempts = 2, last_result = 'AE: no'")
            )
        await store.close()

    asyncio.run(queue_and_fail())
    code, out = cli("bridge", "outbox", "--json", "-c", str(config))
    (entry,) = json.loads(out)
    assert (entry["thread"], entry["event"], entry["attempts"], entry["last_result"]) == (
        "icu-bed3",
        "MDM^T02",
        2,
        "AE: no",
    )


def test_bind_names_an_unknown_thread(config: Path) -> None:
    code, out = cli("bridge", "bind", "nosuch", "V1", "-c", str(config))
    assert code == 1 and "nosuch" in out
    code, out = cli("bridge", "bind", "icu-bed3", "V1", "-c", str(config))
    assert code == 0 and "bound to case V1" in out


def test_threads_create_with_case_binds_the_thread(config: Path) -> None:
    def create(name: str, visit: str) -> tuple[int, str]:
        return cli(
            "threads", "create", name, "--title", name, "--member", "alice@hospital.test",
            "--case", visit, "-c", str(config),
        )  # fmt: skip

    async def bindings() -> dict[str, str]:
        store = Store(f"sqlite+aiosqlite:///{config.parent / 'clinic.db'}")
        try:
            return {t: c.visit for t, c in (await CaseBook(store).bindings()).items()}
        finally:
            await store.close()

    code, out = create("ward3", "V42")
    assert code == 0 and "bound to case V42" in out
    assert asyncio.run(bindings()) == {"ward3": "V42"}

    code, out = create("ward4", " ")  # no visit: bad usage, and no thread is created
    assert code == 2 and "visit number" in out
    assert "ward4" not in asyncio.run(bindings())
    code, out = cli("threads", "list", "--json", "-c", str(config))
    assert "ward4" not in [t["name"] for t in json.loads(out)]
