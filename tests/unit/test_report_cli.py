"""``xmpp-clinic report``: the report of a live store, its formats, history and diff."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template
from xmpp_clinic.cli import app
from xmpp_clinic.config import PolicySettings
from xmpp_clinic.omemo import LEGACY_NS
from xmpp_clinic.registry.model import ObservedDevice
from xmpp_clinic.registry.service import DeviceRegistry
from xmpp_clinic.report.catalogue import catalogue_ids
from xmpp_clinic.store import Store

BOB = "bob@hospital.test"
CURVE = bytes.fromhex("4701d08488451f545a409fb58ae3e58581ca40ac3f7f114698cd71deac73ca01")
runner = CliRunner()


async def approved_phone(store: Store) -> None:
    """Bob's phone, approved after its fingerprint was known, without an MDM asset id."""
    registry = DeviceRegistry(store, PolicySettings())
    await registry.observe(BOB, LEGACY_NS, {11: ObservedDevice(identity_key=CURVE)})
    await registry.approve(BOB, 11, actor="cli:it")


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("report"), approved_phone)


def write(folder: Path, **sections: dict[str, object]) -> Path:
    path = folder / "clinic.toml"
    data: dict[str, object] = {
        "xmpp": {
            "component_jid": "clinic.hospital.test",
            "secret": "s",
            "user_domains": ["hospital.test"],
            "admins": ["it@hospital.test"],
        },
        "store": {"url": f"sqlite+aiosqlite:///{folder / 'clinic.db'}"},
        **sections,
    }
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write(tmp_path)
    use_template(template, path)
    return path


def cli(config: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.stdout


def report_json(config: Path, *args: str) -> dict[str, object]:
    code, out = cli(config, "report", "--format", "json", *args)
    assert code == 0, out
    data: dict[str, object] = json.loads(out)
    return data


def finding(data: dict[str, object], requirement: str) -> dict[str, object]:
    findings = data["findings"]
    assert isinstance(findings, list)
    (found,) = [f for f in findings if f["id"] == requirement]
    return dict(found)


@pytest.mark.requirement("I.11")
def test_every_catalogue_id_appears_exactly_once_in_each_format(config: Path) -> None:
    ids = catalogue_ids()
    assert len(ids) == 29 and len(set(ids)) == 29
    data = report_json(config)
    assert [f["id"] for f in data["findings"]] == list(ids)  # type: ignore[union-attr]
    _, md = cli(config, "report")
    assert sorted(re.findall(r"^### (\S+) ", md, re.MULTILINE)) == sorted(ids)
    _, html = cli(config, "report", "--format", "html")
    assert sorted(re.findall(r'<tr id="([^"]+)"', html)) == sorted(ids)


@pytest.mark.requirement("I.4", "I.11")
def test_state_of_the_registry_is_the_evidence(config: Path) -> None:
    i4 = finding(report_json(config), "I.4")
    assert i4["status"] == "met"
    evidence = {e["label"]: e["value"] for e in i4["evidence"]}  # type: ignore[attr-defined]
    assert evidence["policy.device_approval"] == "manual"
    assert evidence["devices approved"] == "1"
    iii3 = finding(report_json(config), "III.3")
    assert iii3["status"] == "partly" and "without an asset id" in str(iii3["reason"])


@pytest.mark.requirement("II.2", "IV.4")
def test_audit_chain_is_verified_now_and_a_broken_one_is_flagged(config: Path) -> None:
    assert finding(report_json(config), "II.2")["status"] == "met"
    with sqlite3.connect(config.parent / "clinic.db") as db:
        db.execute("UPDATE audit_events SET actor = 'cli:mallory' WHERE seq = 1")
    data = report_json(config)
    assert finding(data, "II.2")["status"] == "not met"
    assert any("BROKEN" in w for w in data["weakened"])  # type: ignore[union-attr]


@pytest.mark.requirement("I.4", "IV.4")
def test_approval_mode_all_turns_i4_partly_and_diff_shows_it(config: Path) -> None:
    assert cli(config, "report", "--save")[0] == 0
    weak = write(config.parent, policy={"device_approval": "all"})
    data = report_json(weak)
    i4 = finding(data, "I.4")
    assert i4["status"] == "partly" and "'all'" in str(i4["reason"])
    assert any("device_approval = 'all'" in w for w in data["weakened"])  # type: ignore[union-attr]
    code, out = cli(weak, "report", "diff")
    assert code == 0, out
    assert "I.4: met: manual approval" in out and "-> partly: policy.device_approval = 'all'" in out
    code, out = cli(weak, "report", "diff", "--json")
    changes = json.loads(out)["changes"]
    assert {"I.4"} <= {c["id"] for c in changes}


@pytest.mark.requirement("IV.4")
def test_saved_reports_are_chained_and_an_edit_is_found(config: Path) -> None:
    for _ in range(2):
        assert cli(config, "report", "--save")[0] == 0
    assert finding(report_json(config), "IV.4")["status"] == "met"
    with sqlite3.connect(config.parent / "clinic.db") as db:
        db.execute("UPDATE saved_reports SET body = replace(body, 'met', 'mét') WHERE seq = 1")
    result = runner.invoke(app, ["report", "diff", "--config", str(config)])
    assert result.exit_code == 1 and "#1 does not match" in result.output


def test_diff_without_a_saved_report_says_what_to_do(config: Path) -> None:
    result = runner.invoke(app, ["report", "diff", "--config", str(config)])
    assert result.exit_code == 1 and "report --save" in result.output


@pytest.mark.requirement("IV.3")
def test_dpia_lists_every_table_with_readers_and_retention(config: Path) -> None:
    code, out = cli(config, "report", "--dpia", "--format", "json")
    assert code == 0, out
    facts = json.loads(out)
    tables = {t for c in facts["categories"] for t in c["tables"]}
    assert {"thread_messages", "devices", "audit_events", "saved_reports"} <= tables
    messages = next(c for c in facts["categories"] if "thread_messages" in c["tables"])
    assert messages["retention"].startswith("30 days")
    assert "end-to-end" in messages["readers"]
    assert "none" in facts["third_parties"]


@pytest.mark.requirement("IV.2", "IV.8")
def test_server_config_decides_confinement_and_archive_expiry(config: Path, tmp_path: Path) -> None:
    lua = tmp_path / "prosody.cfg.lua"
    lua.write_text(
        'modules_enabled = { "roster"; "mam"; "privilege"; -- "clinic_confine";\n}\n'
        'archive_expires_after = "1w"\n'
        'privileged_entities = { ["clinic.hospital.test"] = { roster = "both" } }\n'
    )
    data = report_json(config, "--server-config", str(lua))
    assert finding(data, "IV.2")["status"] == "partly"
    assert any("mod_clinic_confine is not loaded" in w for w in data["weakened"])  # type: ignore[union-attr]
    assert finding(data, "IV.8")["status"] == "met"
    lua.write_text(lua.read_text().replace('-- "clinic_confine";', '"clinic_confine";'))
    assert finding(report_json(config, "--server-config", str(lua)), "IV.2")["status"] == "met"


@pytest.mark.requirement("I.11")
def test_junit_results_show_per_test_outcome_and_a_failure_weakens(
    config: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite name="pytest" tests="2">'
        '<testcase classname="tests.unit.test_policy_e2e" name="test_plaintext_is_refused">'
        '<properties><property name="requirement" value="II.1"/></properties></testcase>'
        '<testcase classname="tests.unit.test_policy_e2e" name="test_omemo2_passes[x]">'
        '<properties><property name="requirement" value="II.1"/></properties>'
        '<failure message="boom"/></testcase>'
        "</testsuite></testsuites>"
    )
    empty = tmp_path / "no-tests"
    empty.mkdir()
    data = report_json(config, "--test-results", str(junit), "--tests", str(empty))
    ii1 = finding(data, "II.1")
    outcomes = {t["test"]: t["outcome"] for t in ii1["tests"]}  # type: ignore[attr-defined]
    assert outcomes == {
        "tests/unit/test_policy_e2e.py::test_plaintext_is_refused": "passed",
        "tests/unit/test_policy_e2e.py::test_omemo2_passes": "failed",
    }
    assert ii1["status"] == "partly" and "failed test" in str(ii1["reason"])
    assert "1 passed, 1 failed" in str(data["test_run"])
    assert finding(data, "I.11")["status"] == "met"


def test_unreadable_server_config_is_bad_usage(config: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["report", "--server-config", str(tmp_path / "nope.lua"), "--config", str(config)]
    )
    assert result.exit_code == 2 and "--server-config" in result.output


@pytest.mark.requirement("I.12", "I.11")
def test_a_fresh_init_config_flags_what_is_weak_for_production(tmp_path: Path) -> None:
    config = tmp_path / "clinic.toml"
    done = runner.invoke(app, ["init", "--domain", "hospital.test", "--output", str(config)])
    assert done.exit_code == 0, done.output
    data = report_json(config, "--tests", str(tmp_path))
    weak = "\n".join(data["weakened"])  # type: ignore[arg-type]
    for expected in ("no [directory]", "confinement unknown", "backup.recipients is empty"):
        assert expected in weak
    assert finding(data, "I.4")["status"] == "met"
    assert finding(data, "II.1")["status"] == "met"
    assert finding(data, "I.12")["status"] == "partly"
    assert finding(data, "IV.7")["status"] == "organisational"
    assert "processing contracts" in str(finding(data, "IV.7")["owner"])


@pytest.mark.requirement("I.13", "III.2", "IV.9")
def test_an_outdated_session_in_the_store_turns_the_update_items_partly(config: Path) -> None:
    import asyncio

    from xmpp_clinic.report.clients import ClientSoftware, check_client
    from xmpp_clinic.report.sessions import ClientSessions
    from xmpp_clinic.settings.report import ClientsSettings

    async def record() -> None:
        store = Store(f"sqlite+aiosqlite:///{config.parent / 'clinic.db'}")
        try:
            old = ClientSoftware("Conversations", "2.10.0", "Android 14")
            sessions = ClientSessions(store)
            await sessions.record(f"{BOB}/phone", old, check_client(old, ClientsSettings()))
        finally:
            await store.close()

    assert finding(report_json(config), "I.13")["status"] == "met"
    asyncio.run(record())
    data = report_json(config)
    for requirement in ("I.13", "III.2", "IV.9"):
        item = finding(data, requirement)
        assert item["status"] == "partly" and "1 outdated session" in str(item["reason"])
    evidence = {e["label"]: e["value"] for e in finding(data, "I.13")["evidence"]}  # type: ignore[attr-defined]
    assert evidence["outdated sessions"] == f"{BOB}/phone: client Conversations 2.10.0 < 2.16"
