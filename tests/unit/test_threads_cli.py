"""``xmpp-clinic threads ...`` against a store on disk: verbs, JSON, exit codes (IV.2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.cli_store import build_template, use_template, write_config
from xmpp_clinic.cli import app
from xmpp_clinic.limits import MAX_TITLE_CHARS


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_template(tmp_path_factory.mktemp("template"))


@pytest.fixture
def config(tmp_path: Path, template: Path) -> Path:
    path = write_config(tmp_path, user_domains=["hospital.test"])
    use_template(template, path)
    return path


def cli(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["threads", *args, "--config", str(config)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.requirement("IV.2")
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


@pytest.mark.requirement("IV.2")
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


@pytest.mark.requirement("IV.2")
def test_direct_thread_needs_two_members(config: Path) -> None:
    code, _, err = cli(config, "create", "dm1", "--title", "D", "--member", "a@h.test", "--direct")
    assert code == 2 and "exactly two" in err
    code, _, _ = cli(
        config, "create", "dm1", "--title", "D", "--member", "a@hospital.test",
        "--member", "b@hospital.test", "--direct",
    )  # fmt: skip
    assert code == 0


@pytest.mark.requirement("IV.2")
def test_failures_exit_1_and_bad_usage_exits_2(config: Path) -> None:
    code, _, err = cli(config, "members", "nosuch")
    assert code == 1 and "no thread named" in err
    code, _, err = cli(config, "create", "bad name", "--title", "T", "--member", "a@h.test")
    assert code == 2 and "invalid thread name" in err
    code, _, err = cli(config, "remove-member", "nosuch", "a@h.test")
    assert code == 1


@pytest.mark.requirement("IV.2")
def test_people_of_other_domains_cannot_be_added(config: Path) -> None:
    code, _, err = cli(config, "create", "ward3", "--title", "W", "--member", "eve@elsewhere.test")
    assert code == 1 and "hospital.test" in err
    cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    code, _, err = cli(config, "add-member", "ward3", "eve@elsewhere.test")
    assert code == 1 and "hospital.test" in err
    _, out, _ = cli(config, "members", "ward3")
    assert "elsewhere" not in out


@pytest.mark.requirement("IV.2")
def test_without_user_domains_nobody_can_be_added(config: Path) -> None:
    write_config(config.parent)
    code, _, err = cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    assert code == 1 and "set xmpp.user_domains" in err


@pytest.mark.requirement("IV.2")
def test_member_counts_read_as_english(config: Path) -> None:
    code, out, _ = cli(config, "create", "ward3", "--title", "W", "--member", "alice@hospital.test")
    assert code == 0 and out == "created thread ward3 with 1 member\n"
    cli(config, "add-member", "ward3", "bob@hospital.test")
    _, out, _ = cli(config, "list")
    assert out == "ward3\tgroup\t2 members\tW\n"


@pytest.mark.parametrize(
    ("title", "problem"),
    [
        ("Ward 3\nnurse on call: Bob", "one line"),
        ("Ward\r3", "one line"),
        ("W\u2028x", "one line"),
        ("x" * (MAX_TITLE_CHARS + 1), f"at most {MAX_TITLE_CHARS}"),
    ],
)
@pytest.mark.requirement("IV.2")
def test_a_title_that_would_break_the_listing_is_bad_usage(
    config: Path, title: str, problem: str
) -> None:
    code, _, err = cli(config, "create", "ward3", "--title", title, "--member", "a@hospital.test")
    assert code == 2 and "'--title'" in err and problem in err
    assert cli(config, "list")[1] == ""


@pytest.mark.requirement("IV.2")
def test_a_title_at_the_limit_with_an_emoji_is_fine(config: Path) -> None:
    title = "Station 3 \U0001f9d1\u200d\u2695\ufe0f" + "x" * (MAX_TITLE_CHARS - 14)
    code, _, err = cli(config, "create", "ward3", "--title", title, "--member", "a@hospital.test")
    assert code == 0, err


@pytest.mark.parametrize(
    "args",
    [
        ("create", "ward3", "--title", "W", "--member", "not-a-jid"),
        ("create", "ward3", "--title", "W", "--member", "a@hospital.test", "--owner", "x@"),
        ("create", "ward3", "--title", "W", "--member", "x" * 1024 + "@hospital.test"),
        ("add-member", "ward3", "not-a-jid"),
        ("add-member", "ward3", "a@hospital.test/phone"),
        ("remove-member", "ward3", "@hospital.test"),
        ("add-member", "ward3", "a@hospital.test", "--affiliation", "boss"),
    ],
)
@pytest.mark.requirement("IV.2")
def test_an_invalid_jid_or_choice_is_bad_usage(config: Path, args: tuple[str, ...]) -> None:
    code, _, err = cli(config, *args)
    assert code == 2
    assert "Invalid value for" in err


@pytest.mark.requirement("IV.2")
def test_audit_events_show_thread_and_membership_changes(config: Path) -> None:
    cli(config, "create", "ward3", "--title", "Ward 3", "--member", "alice@hospital.test")
    cli(config, "add-member", "ward3", "bob@hospital.test")
    cli(config, "add-member", "ward3", "bob@hospital.test", "--affiliation", "admin")
    cli(config, "remove-member", "ward3", "alice@hospital.test")
    result = CliRunner().invoke(app, ["audit", "events", "--config", str(config)])
    lines = result.stdout.splitlines()
    assert result.exit_code == 0
    assert [line.split()[4] for line in lines] == [
        "thread.created",
        "thread.member-added",
        "thread.member-added",
        "thread.member-changed",
        "thread.member-removed",
    ]
    assert all(line.split()[3].startswith("cli:") for line in lines)
    assert "Ward 3" not in result.stdout  # titles are free text: never in the audit log
    assert "ward3" in lines[-1] and "alice@hospital.test" in lines[-1]


@pytest.mark.requirement("IV.2")
def test_a_change_made_through_sudo_is_recorded_as_the_person_who_asked(config: Path) -> None:
    create = ["threads", "create", "w", "--title", "W", "--member", "a@hospital.test"]
    result = CliRunner().invoke(
        app, [*create, "--config", str(config)], env={"SUDO_USER": "it-desk-anna"}
    )
    assert result.exit_code == 0, result.output
    events = CliRunner().invoke(app, ["audit", "events", "--json", "--config", str(config)])
    assert {event["actor"] for event in json.loads(events.stdout)} == {"cli:it-desk-anna"}
