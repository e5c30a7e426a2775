"""``--help`` reads like a man page: options with a word for their value, flags bare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from xmpp_clinic.cli import app

runner = CliRunner()
# Python type names typer would print beside an option: <bool>, <str>, <list[str]>, ...
TYPE_HINT = re.compile(r"<(bool|str|int|float|path|list\[[^>]*\]|[a-z]+ range)>")


def command_paths() -> list[list[str]]:
    paths: list[list[str]] = [[]]
    root = get_command(app)
    for name, command in getattr(root, "commands", {}).items():
        paths.append([name])
        paths.extend([name, sub] for sub in getattr(command, "commands", {}))
    return paths


def options_section(text: str) -> str:
    return text.split("Options:", 1)[1] if "Options:" in text else ""


def test_every_verb_is_listed() -> None:
    names = {" ".join(path) for path in command_paths()}
    for verb in ("run", "init", "check-config", "demo", "threads create", "devices revoke"):
        assert verb in names


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "xmpp-clinic")
def test_help_shows_no_type_hints_beside_options(path: list[str]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    options = options_section(result.stdout)
    assert "--help" in options
    assert not TYPE_HINT.findall(options), options


@pytest.mark.requirement("I.12")
def test_demo_refuses_to_keep_its_files_in_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    """``demo --keep DIR`` never mixes the demo's store and keys into someone's files."""
    (tmp_path / "precious.txt").write_text("mine")
    result = runner.invoke(app, ["demo", "--keep", str(tmp_path)])
    assert result.exit_code == 1
    assert "not empty; give a new or empty one" in " ".join(result.stdout.split())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]
