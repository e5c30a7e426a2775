"""Configuration errors name the key and the fix; defaults are the strictest (I.12).

Behaviour is tested in-process (the loader, and ``check-config`` through typer's runner);
one test runs the real command, for the exit code and stderr an operator sees.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmpp_clinic.cli import app
from xmpp_clinic.cli.gateway import log_warnings
from xmpp_clinic.config import ENV_VAR, ConfigError, load_settings

GOOD = """
[xmpp]
component_jid = "clinic.hospital.test"
server_port = 5347
secret_file = "component.secret"
user_domains = ["hospital.test"]
admins = ["it@hospital.test"]

[store]
url = "sqlite+aiosqlite:///gateway.db"

[directory]
"""

runner = CliRunner()


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    secret = tmp_path / "component.secret"
    secret.write_text("s3cret\n")
    secret.chmod(0o600)
    (tmp_path / "xmpp-clinic.toml").write_text(GOOD)
    return tmp_path


def write(config_dir: Path, text: str) -> Path:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(text)
    return path


def check_config(path: Path | None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    args = ["check-config"] + (["--config", str(path)] if path is not None else [])
    result = runner.invoke(app, args, env=env)
    return result.exit_code, result.stdout, result.stderr


def refused(config_dir: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        load_settings(write(config_dir, text))
    return err.value


@pytest.mark.requirement("I.12")
def test_good_config_loads_with_strict_defaults(config_dir: Path) -> None:
    settings = load_settings(config_dir / "xmpp-clinic.toml")
    assert settings.component_secret == "s3cret"
    assert settings.policy.require_e2e is True
    assert settings.policy.device_approval == "manual"
    assert settings.policy.unapproved_recipient == "strip"
    assert settings.threads.history_for_new_members == "none"
    assert settings.store.url == f"sqlite+aiosqlite:///{config_dir / 'gateway.db'}"
    assert settings.xmpp.secret_file == config_dir / "component.secret"


@pytest.mark.requirement("I.12")
def test_jids_and_domains_are_normalised_as_the_server_compares_them(config_dir: Path) -> None:
    settings = load_settings(
        write(
            config_dir,
            GOOD.replace('"clinic.hospital.test"', '"Clinic.Hospital.TEST"')
            .replace('["hospital.test"]', '["Hospital.Test"]')
            .replace('"it@hospital.test"', '"IT@Hospital.test"'),
        )
    )
    assert settings.xmpp.component_jid == "clinic.hospital.test"
    assert settings.xmpp.user_domains == ["hospital.test"]
    assert settings.xmpp.admins == ["it@hospital.test"]


@pytest.mark.requirement("I.12")
def test_secret_is_not_in_repr(config_dir: Path) -> None:
    settings = load_settings(config_dir / "xmpp-clinic.toml")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.model_dump_json()


@pytest.mark.requirement("I.12")
def test_inline_secret_is_not_in_repr(config_dir: Path) -> None:
    path = write(
        config_dir, GOOD.replace('secret_file = "component.secret"', 'secret = "inl1ne-s3cret"')
    )
    settings = load_settings(path)
    assert settings.component_secret == "inl1ne-s3cret"  # the loader still reads it
    assert "inl1ne-s3cret" not in repr(settings)
    assert "inl1ne-s3cret" not in repr(settings.xmpp)
    assert "inl1ne-s3cret" not in settings.model_dump_json()


@pytest.mark.requirement("I.12")
def test_typo_in_key_names_the_key_and_suggests_the_fix(config_dir: Path) -> None:
    err = refused(config_dir, GOOD.replace("server_port", "server_prot"))
    assert err.key == "xmpp.server_prot"
    assert "server_port" in err.fix


@pytest.mark.requirement("I.12")
def test_key_in_the_wrong_section_names_the_right_one(config_dir: Path) -> None:
    err = refused(config_dir, GOOD.replace("server_port = 5347", 'server_port = 5347\nurl = "x"'))
    assert err.key == "xmpp.url"
    assert "[store] url" in err.fix


@pytest.mark.requirement("I.12")
def test_unknown_section_is_refused(config_dir: Path) -> None:
    err = refused(config_dir, GOOD + "\n[telemetry]\nenabled = true\n")
    assert err.key == "telemetry"


@pytest.mark.requirement("I.12")
def test_bad_policy_value_names_the_key_and_the_choices(config_dir: Path) -> None:
    err = refused(config_dir, GOOD + '\n[policy]\ndevice_approval = "sometimes"\n')
    assert err.key == "policy.device_approval"
    assert "'manual'" in err.fix


@pytest.mark.requirement("I.12")
def test_unreadable_store_path_names_store_url(config_dir: Path) -> None:
    err = refused(config_dir, GOOD.replace("gateway.db", "/nonexistent/dir/gateway.db"))
    assert err.key == "store.url"


@pytest.mark.requirement("I.12")
def test_both_secret_and_secret_file_is_refused(config_dir: Path) -> None:
    err = refused(
        config_dir, GOOD.replace("server_port = 5347", 'server_port = 5347\nsecret = "x"')
    )
    assert err.key == "xmpp.secret"


# Each case an operator met where check-config said "config OK" (issue 7), and the
# RFC 7622 lengths: every one exits 2 with one line that names the key and a fix.
BAD_VALUES = [
    ("server_port = 5347", "server_port = true", "xmpp.server_port", "whole number"),
    ("server_port = 5347", "server_port = 5347.0", "xmpp.server_port", "whole number"),
    ("server_port = 5347", 'server_port = "5347"', "xmpp.server_port", "whole number"),
    (
        '[store]\nurl = "sqlite+aiosqlite:///gateway.db"',
        '[store]\nurl = "sqlite+aiosqlite:///gateway.db"\n[logging]\njson = "yes"',
        "logging.json",
        "true or false",
    ),
    (
        'component_jid = "clinic.hospital.test"',
        'component_jid = "not a jid"',
        "xmpp.component_jid",
        "clinic.hospital.example",
    ),
    (
        'component_jid = "clinic.hospital.test"',
        'component_jid = "clinic@hospital.test"',
        "xmpp.component_jid",
        "clinic.hospital.example",
    ),
    (
        'component_jid = "clinic.hospital.test"',
        f'component_jid = "{".".join(["a" * 63] * 17)}"',  # 1087 bytes
        "xmpp.component_jid",
        "clinic.hospital.example",
    ),
    ('admins = ["it@hospital.test"]', 'admins = ["not a jid"]', "xmpp.admins[0]", "bare JIDs"),
    (
        'admins = ["it@hospital.test"]',
        'admins = ["it@hospital.test", "it@hospital.test/phone"]',
        "xmpp.admins[1]",
        "bare JIDs",
    ),
    (
        'admins = ["it@hospital.test"]',
        f'admins = ["{"x" * 1024}@hospital.test"]',
        "xmpp.admins[0]",
        "bare JIDs",
    ),
    (
        'user_domains = ["hospital.test"]',
        'user_domains = ["not a domain!"]',
        "xmpp.user_domains[0]",
        "hospital.example",
    ),
    (
        "[xmpp]",
        "[xmpp]\nreconnect_max_delay = true",
        "xmpp.reconnect_max_delay",
        "a number",
    ),
]


@pytest.mark.requirement("I.12")
@pytest.mark.parametrize(("old", "new", "key", "fix"), BAD_VALUES)
def test_check_config_refuses_a_bad_value_naming_key_and_fix(
    config_dir: Path, old: str, new: str, key: str, fix: str
) -> None:
    assert old in GOOD
    code, out, err = check_config(write(config_dir, GOOD.replace(old, new, 1)))
    assert code == 2, out
    assert out == ""
    [line] = err.strip().splitlines()
    assert f"'{key}'" in line and "fix:" in line and fix in line


@pytest.mark.requirement("I.12")
def test_top_level_component_secret_is_unknown_and_points_to_the_xmpp_section(
    config_dir: Path,
) -> None:
    code, _, err = check_config(write(config_dir, 'component_secret = "x"\n' + GOOD))
    assert code == 2
    assert "'component_secret': unknown key" in err
    assert "[xmpp] secret" in err


@pytest.mark.requirement("I.12")
def test_check_config_accepts_good_config_without_warnings(config_dir: Path) -> None:
    code, out, err = check_config(config_dir / "xmpp-clinic.toml")
    assert code == 0, err
    assert out.startswith("config OK")
    assert err == ""


@pytest.mark.requirement("IV.2", "I.12")
def test_no_directory_is_named_as_the_small_deployment_mode(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace("[directory]\n", ""))
    code, _, err = check_config(path)
    assert code == 0
    assert "no [directory]: small deployment mode" in err


@pytest.mark.requirement("I.12")
def test_check_config_exits_2_on_missing_secret_file(config_dir: Path) -> None:
    (config_dir / "component.secret").unlink()
    code, _, err = check_config(config_dir / "xmpp-clinic.toml")
    assert code == 2
    assert "xmpp.secret_file" in err


@pytest.mark.requirement("I.12")
def test_secret_file_readable_by_others_gets_a_warning(config_dir: Path) -> None:
    (config_dir / "component.secret").chmod(0o644)
    code, _, err = check_config(config_dir / "xmpp-clinic.toml")
    assert code == 0
    assert "xmpp.secret_file" in err and "readable by group or others" in err
    assert "chmod 600" in err


@pytest.mark.requirement("I.12")
def test_inline_secret_gets_a_warning(config_dir: Path) -> None:
    path = write(config_dir, GOOD.replace('secret_file = "component.secret"', 'secret = "x"'))
    code, _, err = check_config(path)
    assert code == 0
    assert "warning: xmpp.secret is set inline" in err


@pytest.mark.requirement("I.12")
def test_check_config_warns_about_weakened_controls(config_dir: Path) -> None:
    path = write(
        config_dir,
        GOOD.replace('admins = ["it@hospital.test"]', "")
        + '\n[policy]\nrequire_e2e = false\ndevice_approval = "all"\n'
        + '\n[records]\nattachment_hosts = ["http://upload.hospital.test", "files.test"]\n',
    )
    code, _, err = check_config(path)
    assert code == 0, err
    assert "records.attachment_hosts http://upload.hospital.test: " in err
    assert "policy.require_e2e = false" in err
    assert "policy.device_approval = 'all'" in err
    assert "xmpp.admins is empty" in err


@pytest.mark.requirement("I.12")
def test_run_logs_the_same_warnings_at_warning_level(
    config_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (config_dir / "component.secret").chmod(0o640)
    with caplog.at_level(logging.WARNING, logger="xmpp_clinic.config"):
        log_warnings(load_settings(config_dir / "xmpp-clinic.toml"))
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "xmpp.secret_file" in record.getMessage()
    assert "s3cret" not in caplog.text


@pytest.mark.requirement("I.12")
def test_config_from_environment_variable(config_dir: Path) -> None:
    code, out, err = check_config(None, env={ENV_VAR: str(config_dir / "xmpp-clinic.toml")})
    assert code == 0, err
    assert out.startswith("config OK")


@pytest.mark.requirement("I.12")
@pytest.mark.parametrize("content", [None, "this is = = not toml"])
def test_errors_about_a_config_from_the_environment_name_the_variable(
    tmp_path: Path, content: str | None
) -> None:
    path = tmp_path / "clinic.toml"
    if content is not None:
        path.write_text(content)
    code, _, err = check_config(None, env={ENV_VAR: str(path)})
    assert code == 2
    assert f"'{ENV_VAR}'" in err and "--config" not in err


@pytest.mark.requirement("I.12")
def test_errors_about_a_config_from_the_option_name_the_option(tmp_path: Path) -> None:
    code, _, err = check_config(tmp_path / "nope.toml")
    assert code == 2 and "'--config'" in err


@pytest.mark.requirement("I.12")
def test_no_config_at_all_says_how_to_give_one() -> None:
    code, _, err = check_config(None, env={ENV_VAR: ""})
    assert code == 2 and "--config PATH" in err and ENV_VAR in err


@pytest.mark.requirement("I.12")
def test_operator_sees_exit_2_and_one_line_from_the_real_command(config_dir: Path) -> None:
    """The installed entry point, as a shell runs it: exit status and stderr."""
    (config_dir / "xmpp-clinic.toml").write_text(GOOD.replace("user_domains", "user_domain"))
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "check-config", "--config", "xmpp-clinic.toml"],
        cwd=config_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    [line] = proc.stderr.strip().splitlines()
    assert "xmpp.user_domain" in line and "did you mean 'user_domains'?" in line


@pytest.mark.requirement("I.12", "IV.2")
def test_ward_threads_without_a_directory_is_refused_naming_both(config_dir: Path) -> None:
    """Case threads per ward are bound to directory groups: without [directory] every
    admission would fail later, so the config is refused now (issue 15)."""
    no_directory = GOOD.replace("[directory]\n", "")
    err = refused(config_dir, no_directory + '\n[bridge.adt.ward_threads]\n"4B" = "ward-4b"\n')
    assert "ward_threads" in str(err) and "[directory]" in str(err)
