"""``xmpp-clinic devices`` and ``xmpp-clinic audit`` against a temporary SQLite store."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import xeddsa
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.cli import app
from xmpp_clinic.config import PolicySettings, load_settings
from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.store import Store

BOB = "bob@hospital.test"
CURVE = bytes.fromhex("4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01")
runner = CliRunner()


async def bobs_devices(store: Store) -> None:
    """Bob's phone (legacy, with bundle) and tablet (legacy) and Kaidan (OMEMO 2), all pending."""
    registry = DeviceRegistry(store, PolicySettings())
    await registry.observe(
        BOB, LEGACY_NS, {11: ObservedDevice(identity_key=CURVE), 12: ObservedDevice()}
    )
    await registry.observe(BOB, OMEMO2_NS, {11: ObservedDevice(label="Kaidan")})


# Carol's phone runs a python-omemo client: device 21 in both OMEMO versions, one key.
PHONE = xeddsa.seed_to_priv(bytes([21]) * 32)
CAROL = "carol@hospital.test"


async def carols_phone(store: Store) -> None:
    registry = DeviceRegistry(store, PolicySettings())
    curve, ed = xeddsa.priv_to_curve25519_pub(PHONE), xeddsa.priv_to_ed25519_pub(PHONE)
    await registry.observe(CAROL, LEGACY_NS, {21: ObservedDevice(identity_key=curve)})
    await registry.observe(CAROL, OMEMO2_NS, {21: ObservedDevice(identity_key=ed)})


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        "empty": build_template(tmp_path_factory.mktemp("empty")),
        "seeded": build_template(tmp_path_factory.mktemp("seeded"), bobs_devices),
        "phone": build_template(tmp_path_factory.mktemp("phone"), carols_phone),
    }


@pytest.fixture
def config(tmp_path: Path, templates: dict[str, Path]) -> Path:
    path = write_config(tmp_path)
    use_template(templates["empty"], path)
    return path


@pytest.fixture
def seeded(config: Path, templates: dict[str, Path]) -> Path:
    use_template(templates["seeded"], config)
    return config


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.output


def listing(config: Path, *args: str) -> list[dict[str, object]]:
    code, out = cli(config, "devices", "list", "--json", *args)
    assert code == 0, out
    data: list[dict[str, object]] = json.loads(out)
    return data


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_list_json_names_the_documented_fields(seeded: Path) -> None:
    first = listing(seeded)[0]
    assert {"jid", "namespace", "device_id", "state", "fingerprint", "valid_until"} <= set(first)
    assert first["fingerprint"] == CURVE.hex()


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_list_filters_by_person_and_state(seeded: Path) -> None:
    assert len(listing(seeded, "--jid", BOB, "--state", "pending")) == 3
    assert listing(seeded, "--state", "approved") == []
    assert listing(seeded, "--jid", "nobody@hospital.test") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_list_on_a_fresh_store_says_so(config: Path) -> None:
    assert cli(config, "devices", "list") == (0, "no devices\n")


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_list_table_shows_the_fingerprint_as_conversations_does(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "list")
    assert code == 0 and "4701d084 88451f54 5a409fb5" in out and "pending" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_show_prints_both_client_formats(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "show", BOB, "12")
    assert code == 0 and "fingerprint" in out
    code, out = cli(seeded, "devices", "show", BOB, "11", "--namespace", "omemo")
    assert code == 0 and "4701D084 88451F54" in out and "4701d084 88451f54" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_approve_then_list_shows_it_approved(seeded: Path) -> None:
    args = ("devices", "approve", BOB, "12", "--namespace", "omemo")
    code, out = cli(seeded, *args, "--valid-days", "30", "--asset", "MDM-42")
    assert code == 0 and "approved" in out
    (device,) = listing(seeded, "--state", "approved")
    assert (device["device_id"], device["asset_id"]) == (12, "MDM-42")
    assert device["valid_until"] is not None


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_ambiguous_device_id_is_bad_usage(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "approve", BOB, "11")
    assert code == 2 and "namespace" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_ambiguity_says_why_and_what_to_do(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "revoke", BOB, "11", "--reason", "lost")
    assert code == 2
    assert "identity key of one is not known yet" in " ".join(out.split())
    assert listing(seeded, "--state", "revoked") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_one_approve_covers_both_versions_of_one_phone(
    config: Path, templates: dict[str, Path]
) -> None:
    use_template(templates["phone"], config)
    code, out = cli(config, "devices", "approve", CAROL, "21")
    assert code == 0, out
    assert "approved carol@hospital.test/omemo/21" in out
    assert "approved carol@hospital.test/omemo2/21" in out
    assert {d["state"] for d in listing(config)} == {"approved"}
    code, out = cli(config, "devices", "revoke", CAROL, "21", "--reason", "lost")
    assert code == 0 and out.count("revoked") == 2
    assert {d["state"] for d in listing(config)} == {"revoked"}


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_an_asset_id_beyond_the_store_column_is_bad_usage(seeded: Path) -> None:
    args = ("devices", "approve", BOB, "12", "--namespace", "omemo", "--asset", "A" * 129)
    code, out = cli(seeded, *args)
    assert code == 2 and "128 characters" in out
    assert listing(seeded, "--state", "approved") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_unknown_device_is_a_failure(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "approve", BOB, "99")
    assert code == 1 and "no device 99" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_revoke_needs_a_reason(seeded: Path) -> None:
    code, _ = cli(seeded, "devices", "revoke", BOB, "12")
    assert code == 2


@pytest.mark.requirement("I.4", "I.5", "III.3")
@pytest.mark.parametrize("reason", ["", "   "])
def test_revoke_with_an_empty_reason_is_bad_usage(seeded: Path, reason: str) -> None:
    code, out = cli(
        seeded, "devices", "revoke", BOB, "12", "--namespace", "omemo", "--reason", reason
    )
    assert code == 2 and "--reason" in out
    assert listing(seeded, "--state", "revoked") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_lost_phone_with_an_empty_reason_is_bad_usage(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "revoke-all", BOB, "--reason", "")
    assert code == 2 and "--reason" in out
    assert listing(seeded, "--state", "revoked") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_approving_a_device_without_fingerprint_warns_it_will_wait_again(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "approve", BOB, "12", "--namespace", "omemo")
    assert code == 0 and "fingerprint unknown" in out and "pending" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_revoke_records_the_reason(seeded: Path) -> None:
    code, _ = cli(seeded, "devices", "revoke", BOB, "12", "--reason", "screen broken")
    assert code == 0
    (device,) = listing(seeded, "--state", "revoked")
    assert device["reason"] == "screen broken"
    assert str(device["revoked_by"]).startswith("cli:")


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_lost_phone_revokes_every_device_of_the_person(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "revoke-all", BOB, "--reason", "lost phone")
    assert code == 0 and out.count("revoked") == 3
    assert {d["state"] for d in listing(seeded)} == {"revoked"}


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_bad_state_is_bad_usage(config: Path) -> None:
    assert cli(config, "devices", "list", "--state", "lost")[0] == 2


@pytest.mark.parametrize(
    "args",
    [
        ("show", "not-a-jid", "12"),
        ("approve", "not-a-jid", "12"),
        ("revoke", "not-a-jid", "12", "--reason", "lost"),
        ("revoke-all", "not-a-jid", "--reason", "lost"),
        ("show", "bob@hospital.test/phone", "12"),
        ("show", "x" * 1024 + "@hospital.test", "12"),
        ("list", "--jid", "not-a-jid"),
    ],
)
@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_an_invalid_jid_is_bad_usage_everywhere(seeded: Path, args: tuple[str, ...]) -> None:
    code, out = cli(seeded, "devices", *args)
    assert code == 2 and ("'JID'" in out or "'--jid'" in out)
    assert listing(seeded, "--state", "revoked") == []


@pytest.mark.requirement("I.4", "I.5", "III.3")
@pytest.mark.parametrize("device_id", ["0", "-1", "2147483648", "99999999999999999999999"])
def test_a_device_id_out_of_range_is_bad_usage(config: Path, device_id: str) -> None:
    result = runner.invoke(app, ["devices", "show", "--config", str(config), BOB, "--", device_id])
    code, out = result.exit_code, result.output
    assert code == 2 and "DEVICE_ID" in out and "Traceback" not in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
@pytest.mark.parametrize("verb", ["approve", "revoke"])
def test_an_oversized_device_id_is_bad_usage_for_every_verb(seeded: Path, verb: str) -> None:
    """Issue 8.9: no OverflowError traceback, a sentence naming the range."""
    args = ["devices", verb, "--config", str(seeded), BOB, "99999999999999999999999"]
    result = runner.invoke(app, [*args, "--reason", "x"] if verb == "revoke" else args)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "2147483647" in result.output and "Traceback" not in result.output


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_namespace_takes_the_short_name_or_the_uri(seeded: Path) -> None:
    for namespace in ("omemo2", OMEMO2_NS):
        code, out = cli(seeded, "devices", "show", BOB, "11", "--namespace", namespace)
        assert code == 0 and "Kaidan" in out
    code, out = cli(seeded, "devices", "show", BOB, "11", "--namespace", "omemo3")
    assert code == 2 and "--namespace" in out and "omemo2" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_a_reason_over_the_limit_is_bad_usage(seeded: Path) -> None:
    code, out = cli(seeded, "devices", "revoke-all", BOB, "--reason", "x" * 501)
    assert code == 2 and "--reason" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_missing_config_is_bad_usage(tmp_path: Path) -> None:
    code, out = cli(tmp_path / "nope.toml", "devices", "list")
    assert code == 2 and "--config" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_audit_events_list_what_the_cli_did(seeded: Path) -> None:
    cli(seeded, "devices", "revoke", BOB, "12", "--reason", "lost")
    code, out = cli(seeded, "audit", "events", "--json")
    events = json.loads(out)
    assert code == 0 and events[-1]["action"] == "device.revoked" and events[-1]["note"] == "lost"


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_audit_verify_passes_on_an_untouched_log(seeded: Path) -> None:
    code, out = cli(seeded, "audit", "verify")
    assert code == 0 and "intact: 3 events" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_audit_verify_fails_and_names_the_tampered_event(seeded: Path) -> None:
    db = load_settings(seeded).store.url.split("///", 1)[1]
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("UPDATE audit_events SET actor = 'someone' WHERE seq = 2")
        connection.commit()
    code, out = cli(seeded, "audit", "verify")
    assert code == 1 and "event 2" in out and "first broken entry: 2" in out


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_audit_verify_detects_a_rewritten_chain_from_a_recorded_head(seeded: Path) -> None:
    _, out = cli(seeded, "audit", "verify", "--json")
    head = json.loads(out)["head"]
    assert cli(seeded, "audit", "verify", "--expect-head", head)[0] == 0
    assert cli(seeded, "audit", "verify", "--expect-head", "2:" + "0" * 64)[0] == 1


@pytest.mark.requirement("I.4", "I.5", "III.3")
def test_cli_runs_as_a_subprocess(seeded: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "devices", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "XMPP_CLINIC_CONFIG": str(seeded)},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)) == 3
