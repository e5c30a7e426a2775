"""``xmpp-clinic devices`` and ``xmpp-clinic audit`` against a temporary SQLite store."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from xmpp_clinic.cli import app
from xmpp_clinic.config import load_settings
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store

BOB = "bob@hospital.test"
CURVE = bytes.fromhex("4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01")
runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "clinic.toml"
    data = {
        "xmpp": {"component_jid": "clinic.hospital.test", "secret": "s"},
        "store": {"url": f"sqlite+aiosqlite:///{tmp_path / 'clinic.db'}"},
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def seed(config: Path) -> None:
    """Bob's phone (legacy, with bundle) and tablet (legacy) and Kaidan (OMEMO 2), all pending."""

    async def go() -> None:
        settings = load_settings(config)
        store = Store(settings.store.url)
        await store.migrate()
        registry = DeviceRegistry(store, settings.policy)
        await registry.observe(
            BOB, LEGACY_NS, {11: ObservedDevice(identity_key=CURVE), 12: ObservedDevice()}
        )
        await registry.observe(BOB, OMEMO2_NS, {11: ObservedDevice(label="Kaidan")})
        await store.close()

    asyncio.run(go())


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def listing(config: Path, *args: str) -> list[dict[str, object]]:
    code, out = cli(config, "devices", "list", "--json", *args)
    assert code == 0, out
    data: list[dict[str, object]] = json.loads(out)
    return data


def test_list_json_names_the_documented_fields(config: Path) -> None:
    seed(config)
    first = listing(config)[0]
    assert {"jid", "namespace", "device_id", "state", "fingerprint", "valid_until"} <= set(first)
    assert first["fingerprint"] == CURVE.hex()


def test_list_filters_by_person_and_state(config: Path) -> None:
    seed(config)
    assert len(listing(config, "--jid", BOB, "--state", "pending")) == 3
    assert listing(config, "--state", "approved") == []
    assert listing(config, "--jid", "nobody@hospital.test") == []


def test_list_on_a_fresh_store_says_so(config: Path) -> None:
    assert cli(config, "devices", "list") == (0, "no devices\n")


def test_list_table_shows_the_fingerprint_as_conversations_does(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "list")
    assert code == 0 and "4701d084 88451f54 5a409fb5" in out and "pending" in out


def test_show_prints_both_client_formats(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "show", BOB, "12")
    assert code == 0 and "fingerprint" in out
    code, out = cli(config, "devices", "show", BOB, "11", "--namespace", "omemo")
    assert code == 0 and "4701D084 88451F54" in out and "4701d084 88451f54" in out


def test_approve_then_list_shows_it_approved(config: Path) -> None:
    seed(config)
    args = ("devices", "approve", BOB, "12", "--namespace", "omemo")
    code, out = cli(config, *args, "--valid-days", "30", "--asset", "MDM-42")
    assert code == 0 and "approved" in out
    (device,) = listing(config, "--state", "approved")
    assert (device["device_id"], device["asset_id"]) == (12, "MDM-42")
    assert device["valid_until"] is not None


def test_ambiguous_device_id_is_bad_usage(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "approve", BOB, "11")
    assert code == 2 and "namespace" in out


def test_unknown_device_is_a_failure(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "approve", BOB, "99")
    assert code == 1 and "no device 99" in out


def test_revoke_needs_a_reason(config: Path) -> None:
    seed(config)
    code, _ = cli(config, "devices", "revoke", BOB, "12")
    assert code == 2


@pytest.mark.parametrize("reason", ["", "   "])
def test_revoke_with_an_empty_reason_is_bad_usage(config: Path, reason: str) -> None:
    seed(config)
    code, out = cli(
        config, "devices", "revoke", BOB, "12", "--namespace", "omemo", "--reason", reason
    )
    assert code == 2 and "--reason" in out
    assert listing(config, "--state", "revoked") == []


def test_lost_phone_with_an_empty_reason_is_bad_usage(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "revoke-all", BOB, "--reason", "")
    assert code == 2 and "--reason" in out
    assert listing(config, "--state", "revoked") == []


def test_approving_a_device_without_fingerprint_warns_it_will_wait_again(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "approve", BOB, "12", "--namespace", "omemo")
    assert code == 0 and "fingerprint unknown" in out and "pending" in out


def test_revoke_records_the_reason(config: Path) -> None:
    seed(config)
    code, _ = cli(config, "devices", "revoke", BOB, "12", "--reason", "screen broken")
    assert code == 0
    (device,) = listing(config, "--state", "revoked")
    assert device["reason"] == "screen broken"
    assert str(device["revoked_by"]).startswith("cli:")


def test_lost_phone_revokes_every_device_of_the_person(config: Path) -> None:
    seed(config)
    code, out = cli(config, "devices", "revoke-all", BOB, "--reason", "lost phone")
    assert code == 0 and out.count("revoked") == 3
    assert {d["state"] for d in listing(config)} == {"revoked"}


def test_bad_state_is_bad_usage(config: Path) -> None:
    assert cli(config, "devices", "list", "--state", "lost")[0] == 2


def test_missing_config_is_bad_usage(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "nope.toml", "devices", "list")
    assert code == 2 and "--config" in out


def test_audit_events_list_what_the_cli_did(config: Path) -> None:
    seed(config)
    cli(config, "devices", "revoke", BOB, "12", "--reason", "lost")
    code, out = cli(config, "audit", "events", "--json")
    events = json.loads(out)
    assert code == 0 and events[-1]["action"] == "device.revoked" and events[-1]["note"] == "lost"


def test_audit_verify_passes_on_an_untouched_log(config: Path) -> None:
    seed(config)
    code, out = cli(config, "audit", "verify")
    assert code == 0 and "intact: 3 events" in out


def test_audit_verify_fails_and_names_the_tampered_event(config: Path) -> None:
    seed(config)
    db = load_settings(config).store.url.split("///", 1)[1]
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sqlite3; c = sqlite3.connect({db!r}); "
            "c.execute(\"UPDATE audit_events SET actor = 'someone' WHERE seq = 2\"); c.commit()",
        ],
        check=True,
    )
    code, out = cli(config, "audit", "verify")
    assert code == 1 and "event 2" in out and "first broken entry: 2" in out


def test_audit_verify_detects_a_rewritten_chain_from_a_recorded_head(config: Path) -> None:
    seed(config)
    _, out = cli(config, "audit", "verify", "--json")
    head = json.loads(out)["head"]
    assert cli(config, "audit", "verify", "--expect-head", head)[0] == 0
    assert cli(config, "audit", "verify", "--expect-head", "2:" + "0" * 64)[0] == 1


def test_cli_runs_as_a_subprocess(config: Path) -> None:
    seed(config)
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "devices", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "XMPP_CLINIC_CONFIG": str(config)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 3
