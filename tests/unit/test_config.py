"""Configuration errors name the key and the fix; defaults are the strictest (I.12)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from xmpp_clinic.config import ConfigError, load_settings

GOOD = """
[xmpp]
component_jid = "clinic.hospital.test"
server_port = 5347
secret_file = "component.secret"
user_domains = ["hospital.test"]

[store]
url = "sqlite+aiosqlite:///gateway.db"
"""


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    (tmp_path / "component.secret").write_text("s3cret\n")
    (tmp_path / "xmpp-clinic.toml").write_text(GOOD)
    return tmp_path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_config_loads_with_strict_defaults(config_dir: Path) -> None:
    settings = load_settings(config_dir / "xmpp-clinic.toml")
    assert settings.component_secret == "s3cret"
    assert settings.policy.require_e2e is True
    assert settings.policy.device_approval == "manual"
    assert settings.policy.unapproved_recipient == "strip"
    assert settings.threads.history_for_new_members == "none"
    assert settings.store.url == f"sqlite+aiosqlite:///{config_dir / 'gateway.db'}"


def test_secret_is_not_in_repr(config_dir: Path) -> None:
    settings = load_settings(config_dir / "xmpp-clinic.toml")
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in settings.model_dump_json()


def test_inline_secret_is_not_in_repr(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace('secret_file = "component.secret"', 'secret = "inl1ne-s3cret"'))
    settings = load_settings(path)
    assert settings.component_secret == "inl1ne-s3cret"  # the loader still reads it
    assert "inl1ne-s3cret" not in repr(settings)
    assert "inl1ne-s3cret" not in repr(settings.xmpp)
    assert "inl1ne-s3cret" not in settings.model_dump_json()


def test_typo_in_key_names_the_key_and_suggests_the_fix(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace("server_port", "server_prot"))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "xmpp.server_prot"
    assert "server_port" in err.value.fix


def test_unknown_section_is_refused(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD + "\n[telemetry]\nenabled = true\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "telemetry"


def test_wrong_type_names_the_key(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace("server_port = 5347", 'server_port = "many"'))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "xmpp.server_port"


def test_bad_policy_value_names_the_key(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD + '\n[policy]\ndevice_approval = "sometimes"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "policy.device_approval"


def test_unreadable_store_path_names_store_url(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace("gateway.db", "/nonexistent/dir/gateway.db"))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "store.url"


def test_both_secret_and_secret_file_is_refused(config_dir: Path) -> None:
    path = config_dir / "xmpp-clinic.toml"
    path.write_text(GOOD.replace("server_port = 5347", 'server_port = 5347\nsecret = "x"'))
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    assert err.value.key == "xmpp.secret"


def test_check_config_exits_2_on_typo(config_dir: Path) -> None:
    (config_dir / "xmpp-clinic.toml").write_text(GOOD.replace("user_domains", "user_domain"))
    proc = cli("check-config", "--config", "xmpp-clinic.toml", cwd=config_dir)
    assert proc.returncode == 2
    assert "xmpp.user_domain" in proc.stderr
    assert "user_domains" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_check_config_exits_2_on_missing_secret_file(config_dir: Path) -> None:
    (config_dir / "component.secret").unlink()
    proc = cli("check-config", "--config", "xmpp-clinic.toml", cwd=config_dir)
    assert proc.returncode == 2
    assert "xmpp.secret_file" in proc.stderr


def test_check_config_accepts_good_config(config_dir: Path) -> None:
    proc = cli("check-config", "--config", "xmpp-clinic.toml", cwd=config_dir)
    assert proc.returncode == 0, proc.stderr
    assert "config OK" in proc.stdout


def test_config_from_environment_variable(config_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "xmpp_clinic", "check-config"],
        cwd=config_dir,
        capture_output=True,
        text=True,
        env={"XMPP_CLINIC_CONFIG": str(config_dir / "xmpp-clinic.toml"), "PATH": "/usr/bin"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr


def test_help_lists_the_verbs(tmp_path: Path) -> None:
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for verb in ("run", "init", "check-config", "demo"):
        assert verb in proc.stdout


def test_init_writes_a_config_that_checks_and_server_snippets(tmp_path: Path) -> None:
    proc = cli(
        "init",
        "--domain=hospital.test",
        "--server-port=5399",
        "--output=etc/xmpp-clinic.toml",
        "--prosody-snippet=prosody.cfg.lua",
        "--ejabberd-snippet=ejabberd.yml",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    secret = tmp_path / "etc" / "component.secret"
    assert secret.stat().st_mode & 0o077 == 0
    settings = load_settings(tmp_path / "etc" / "xmpp-clinic.toml")
    assert settings.xmpp.component_jid == "clinic.hospital.test"
    assert settings.xmpp.server_port == 5399
    prosody = (tmp_path / "prosody.cfg.lua").read_text()
    assert 'Component "clinic.hospital.test"' in prosody
    assert "component_ports = { 5399 }" in prosody
    ejabberd = (tmp_path / "ejabberd.yml").read_text()
    assert "clinic.hospital.test:" in ejabberd
    assert "port: 5399" in ejabberd
    # the secret itself never lands in a snippet or the config
    value = secret.read_text().strip()
    assert value not in prosody + ejabberd + (tmp_path / "etc" / "xmpp-clinic.toml").read_text()


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("")
    proc = cli("init", "--domain=hospital.test", "--output=x.toml", cwd=tmp_path)
    assert proc.returncode == 2
    assert "--force" in proc.stderr


def test_init_with_bad_values_writes_nothing(tmp_path: Path) -> None:
    proc = cli(
        "init",
        "--domain=hospital.test",
        "--server-port=70000",
        "--output=x.toml",
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "xmpp.server_port" in proc.stderr
    assert not (tmp_path / "x.toml").exists()
    assert not (tmp_path / "component.secret").exists()


def test_init_records_admins(tmp_path: Path) -> None:
    proc = cli(
        "init",
        "--domain=hospital.test",
        "--admin=it@hospital.test",
        "--admin=it2@hospital.test",
        "--output=x.toml",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    settings = load_settings(tmp_path / "x.toml")
    assert settings.xmpp.admins == ["it@hospital.test", "it2@hospital.test"]


def test_check_config_warns_about_weakened_controls(config_dir: Path) -> None:
    (config_dir / "xmpp-clinic.toml").write_text(
        GOOD + '\n[policy]\nrequire_e2e = false\ndevice_approval = "all"\n'
    )
    proc = cli("check-config", "--config", "xmpp-clinic.toml", cwd=config_dir)
    assert proc.returncode == 0, proc.stderr
    assert "policy.require_e2e = false" in proc.stderr
    assert "policy.device_approval = 'all'" in proc.stderr
    assert "xmpp.admins is empty" in proc.stderr
