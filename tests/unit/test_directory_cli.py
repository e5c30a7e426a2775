"""``xmpp-clinic directory import`` and ``threads bind|unbind``: output, JSON, exit codes (IV.2)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import tomli_w
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.cli import app

HEADER = "jid,name,staff_id,role,groups\n"
STAFF = (
    HEADER + "alice@hospital.test,Alice,1,nurse,ward-a\n"
    "bob@hospital.test,Bob,2,nurse,ward-b\n"
    "eve@elsewhere.test,Eve,3,nurse,ward-a\n"
)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


def configured(tmp_path: Path, template: Path, directory: dict[str, object] | None) -> Path:
    path = write_config(tmp_path, user_domains=["hospital.test"])
    if directory is not None:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        data["directory"] = directory
        path.write_text(tomli_w.dumps(data), encoding="utf-8")
    use_template(template, path)
    return path


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    return configured(tmp_path, template, {"max_removal_share": 0.5})


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.requirement("IV.2")
def test_import_shows_the_diff_and_reports_bad_rows(config: Path, tmp_path: Path) -> None:
    export = tmp_path / "staff.csv"
    export.write_text(STAFF, encoding="utf-8")
    code, out, err = cli(config, "directory", "import", str(export))
    assert code == 0, err
    assert "+ person 1 Alice (alice@hospital.test)" in out
    assert "+ member 1 of ward-a" in out
    assert "skipped line 4: eve@elsewhere.test is not in xmpp.user_domains" in err
    assert "1 bad rows skipped" in out


@pytest.mark.requirement("IV.2")
def test_dry_run_json_changes_nothing(config: Path, tmp_path: Path) -> None:
    export = tmp_path / "staff.csv"
    export.write_text(STAFF, encoding="utf-8")
    code, out, _err = cli(config, "directory", "import", str(export), "--dry-run", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["applied"] is False and report["added"] == ["1", "2"]
    assert report["bad_rows"][0]["line"] == 4
    code, out, _err = cli(config, "directory", "import", str(export), "--json")
    assert json.loads(out)["added"] == ["1", "2"]  # the dry run left nothing behind


@pytest.mark.requirement("IV.2")
def test_threads_follow_a_bound_group_from_the_command_line(config: Path, tmp_path: Path) -> None:
    export = tmp_path / "staff.csv"
    export.write_text(STAFF, encoding="utf-8")
    cli(config, "directory", "import", str(export))
    code, out, err = cli(config, "threads", "create", "wa", "--title", "A", "--group", "ward-a")
    assert code == 0, err
    assert "with 1 member" in out
    code, out, _ = cli(config, "threads", "bind", "wa", "ward-b")
    assert code == 0 and "2 members now" in out
    code, out, _ = cli(config, "threads", "unbind", "wa", "ward-a")
    assert code == 0 and "1 member now" in out
    code, _out, err = cli(config, "threads", "bind", "wa", "ward-z")
    assert code == 2 and "no group named 'ward-z'" in err


@pytest.mark.requirement("IV.2")
def test_without_a_directory_section_import_is_bad_usage(tmp_path: Path, template: Path) -> None:
    config = configured(tmp_path, template, None)
    export = tmp_path / "staff.csv"
    export.write_text(STAFF, encoding="utf-8")
    code, _out, err = cli(config, "directory", "import", str(export))
    assert code == 2 and "small deployment mode" in err
    code, _out, err = cli(config, "directory", "sync")
    assert code == 2


def test_an_unreadable_file_is_a_failure(config: Path, tmp_path: Path) -> None:
    code, _out, err = cli(config, "directory", "import", str(tmp_path / "missing.csv"))
    assert code == 1 and "cannot read" in err
