"""``xmpp-clinic threads ...`` against a store on disk: verbs, JSON, exit codes (IV.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmpp_clinic.cli import app


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "secret").write_text("s3cret\n", encoding="utf-8")
    path = tmp_path / "clinic.toml"
    path.write_text(
        f"""
[xmpp]
component_jid = "clinic.hospital.test"
secret_file = "{tmp_path / "secret"}"
user_domains = ["hospital.test"]
[store]
url = "sqlite+aiosqlite:///{tmp_path / "clinic.db"}"
""",
        encoding="utf-8",
    )
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["threads", *args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


def test_create_list_and_members(config: Path) -> None:
    code, out, _ = cli(
        config, "create", "ward3", "--title", "Ward 3",
        "--member", "alice@hospital.test", "--member", "bob@hospital.test",
        "--owner", "carol@hospital.test",
    )  # fmt: skip
    assert code == 0 and "3 members" in out
    code, out, _ = cli(config, "list", "--json")
    assert code == 0
    [thread] = json.loads(out)
    assert thread["name"] == "ward3" and thread["kind"] == "group"
    code, out, _ = cli(config, "members", "ward3", "--json")
    members = {m["jid"]: m["affiliation"] for m in json.loads(out)}
    assert members == {
        "alice@hospital.test": "member",
        "bob@hospital.test": "member",
        "carol@hospital.test": "owner",
    }


def test_add_and_remove_member(config: Path) -> None:
    cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    code, out, _ = cli(
        config, "add-member", "ward3", "dave@hospital.test", "--affiliation", "admin"
    )
    assert code == 0 and "admin" in out
    code, _, _ = cli(config, "remove-member", "ward3", "alice@hospital.test")
    assert code == 0
    code, out, _ = cli(config, "members", "ward3")
    assert "dave@hospital.test\tadmin" in out and "alice" not in out


def test_direct_thread_needs_two_members(config: Path) -> None:
    code, _, err = cli(config, "create", "dm1", "--title", "D", "--member", "a@h.test", "--direct")
    assert code == 2 and "exactly two" in err
    code, _, _ = cli(
        config, "create", "dm1", "--title", "D", "--member", "a@hospital.test",
        "--member", "b@hospital.test", "--direct",
    )  # fmt: skip
    assert code == 0


def test_failures_exit_1_and_bad_usage_exits_2(config: Path) -> None:
    code, _, err = cli(config, "members", "nosuch")
    assert code == 1 and "no thread named" in err
    code, _, err = cli(config, "create", "bad name", "--title", "T", "--member", "a@h.test")
    assert code == 2 and "invalid thread name" in err
    code, _, err = cli(config, "remove-member", "nosuch", "a@h.test")
    assert code == 1


def test_people_of_other_domains_cannot_be_added(config: Path) -> None:
    code, _, err = cli(config, "create", "ward3", "--title", "W", "--member", "eve@elsewhere.test")
    assert code == 1 and "hospital.test" in err
    cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    code, _, err = cli(config, "add-member", "ward3", "eve@elsewhere.test")
    assert code == 1 and "hospital.test" in err
    _, out, _ = cli(config, "members", "ward3")
    assert "elsewhere" not in out


def test_without_user_domains_nobody_can_be_added(config: Path) -> None:
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace('["hospital.test"]', "[]"), encoding="utf-8")
    code, _, err = cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    assert code == 1 and "set xmpp.user_domains" in err
