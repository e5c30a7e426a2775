"""``xmpp-clinic init``: checks everything before writing anything, creates no folders (I.12)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from xmpp_clinic.cli import app
from xmpp_clinic.config import load_settings
from xmpp_clinic.templates import ServerExpiry, block

runner = CliRunner()


def init(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["init", "--domain=hospital.test", *args])
    return result.exit_code, result.stdout, result.stderr


def files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.requirement("I.12")
def test_init_writes_a_config_that_checks_and_server_snippets(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    code, out, err = init(
        "--server-port=5399",
        f"--output={tmp_path / 'etc' / 'xmpp-clinic.toml'}",
        f"--prosody-snippet={tmp_path / 'prosody.cfg.lua'}",
        f"--ejabberd-snippet={tmp_path / 'ejabberd.yml'}",
        "--admin=it@hospital.test",
    )
    assert code == 0, err
    secret = tmp_path / "etc" / "component.secret"
    assert secret.stat().st_mode & 0o077 == 0
    assert f"wrote {secret} (mode 0600)" in out
    settings = load_settings(tmp_path / "etc" / "xmpp-clinic.toml")
    assert settings.xmpp.component_jid == "clinic.hospital.test"
    assert settings.xmpp.server_port == 5399
    assert settings.store.url == f"sqlite+aiosqlite:///{tmp_path / 'etc' / 'xmpp-clinic.db'}"
    prosody = (tmp_path / "prosody.cfg.lua").read_text()
    assert 'Component "clinic.hospital.test"' in prosody
    assert "component_ports = { 5399 }" in prosody
    ejabberd = (tmp_path / "ejabberd.yml").read_text()
    assert "clinic.hospital.test:" in ejabberd
    assert "port: 5399" in ejabberd
    # the secret itself never lands in a snippet or the config
    value = secret.read_text().strip()
    assert value not in prosody + ejabberd + (tmp_path / "etc" / "xmpp-clinic.toml").read_text()
    # Nothing else weakened (an admin is named, the secret is 0600); without [directory]
    # the fresh config is the small deployment mode, and says so (IV.2).
    assert err.splitlines() == [
        "warning: no [directory]: small deployment mode; members are typed in by hand and "
        "not checked against the hospital directory (IV.2)"
    ]


@pytest.mark.requirement("I.12")
def test_init_does_not_create_a_missing_config_folder(tmp_path: Path) -> None:
    code, _, err = init(f"--output={tmp_path / 'etc' / 'x.toml'}")
    assert code == 2
    assert "--output" in err and f"{tmp_path / 'etc'} does not exist" in err
    assert files(tmp_path) == set()


@pytest.mark.requirement("I.12")
def test_a_missing_snippet_folder_is_found_before_anything_is_written(tmp_path: Path) -> None:
    code, _, err = init(
        f"--output={tmp_path / 'x.toml'}", f"--ejabberd-snippet={tmp_path / 'no' / 'e.yml'}"
    )
    assert code == 2
    assert "--ejabberd-snippet" in err and "does not exist" in err
    assert files(tmp_path) == set()


@pytest.mark.requirement("I.12")
def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text("")
    code, _, err = init(f"--output={tmp_path / 'x.toml'}")
    assert code == 2
    assert "--force" in err
    assert files(tmp_path) == {"x.toml"}


@pytest.mark.requirement("I.12")
def test_init_refuses_to_overwrite_a_snippet_without_force(tmp_path: Path) -> None:
    (tmp_path / "p.lua").write_text("-- mine")
    args = (f"--output={tmp_path / 'x.toml'}", f"--prosody-snippet={tmp_path / 'p.lua'}")
    code, _, err = init(*args)
    assert code == 2 and "--prosody-snippet" in err and "--force" in err
    assert files(tmp_path) == {"p.lua"}
    assert init(*args, "--force")[0] == 0
    assert "clinic.hospital.test" in (tmp_path / "p.lua").read_text()


@pytest.mark.requirement("I.12")
def test_init_keeps_an_existing_secret(tmp_path: Path) -> None:
    secret = tmp_path / "component.secret"
    secret.write_text("kept\n")
    secret.chmod(0o600)
    code, out, _ = init(f"--output={tmp_path / 'x.toml'}")
    assert code == 0 and "component.secret" not in out
    assert load_settings(tmp_path / "x.toml").component_secret == "kept"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--server-port=70000"], "--server-port"),
        (["--server-port=0"], "--server-port"),
        (["--component-jid=not a domain"], "--component-jid"),
        (["--admin=not-a-jid"], "--admin"),
        (["--admin=it@hospital.test/phone"], "--admin"),
        ([f"--admin={'x' * 1024}@hospital.test"], "--admin"),
        (["--store=mysql://x"], "--store"),
    ],
)
@pytest.mark.requirement("I.12")
def test_init_with_bad_values_writes_nothing(tmp_path: Path, args: list[str], named: str) -> None:
    code, _, err = init(f"--output={tmp_path / 'x.toml'}", *args)
    assert code == 2
    assert named in err
    assert files(tmp_path) == set()


@pytest.mark.requirement("I.12")
def test_init_with_a_bad_domain_writes_nothing(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["init", "--domain=not a domain!", f"--output={tmp_path / 'x.toml'}"]
    )
    assert result.exit_code == 2 and "--domain" in result.stderr
    assert files(tmp_path) == set()


@pytest.mark.requirement("I.12")
def test_init_records_admins(tmp_path: Path) -> None:
    code, _, err = init(
        "--admin=it@hospital.test", "--admin=IT2@hospital.test", f"--output={tmp_path / 'x.toml'}"
    )
    assert code == 0, err
    settings = load_settings(tmp_path / "x.toml")
    assert settings.xmpp.admins == ["it@hospital.test", "it2@hospital.test"]


@pytest.mark.requirement("I.12")
def test_init_without_admins_warns_that_nobody_can_use_the_commands(tmp_path: Path) -> None:
    code, _, err = init(f"--output={tmp_path / 'x.toml'}")
    assert code == 0
    assert "warning: xmpp.admins is empty" in err


def uncommented(text: str) -> list[str]:
    return [
        line
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "--"))
    ]


@pytest.mark.requirement("I.12")
def test_snippets_can_be_included_into_stock_debian_configs(tmp_path: Path) -> None:
    """Proven by hand against Debian's files (README): ejabberd refuses a module configured
    in two files, and its ejabberd.yml has mod_pubsub; a modules_enabled in a Prosody
    conf.d file would replace the main list. So neither snippet sets them."""
    code, _, err = init(
        f"--output={tmp_path / 'x.toml'}",
        f"--prosody-snippet={tmp_path / 'p.cfg.lua'}",
        f"--ejabberd-snippet={tmp_path / 'e.yml'}",
    )
    assert code == 0, err
    ejabberd = uncommented((tmp_path / "e.yml").read_text())
    assert not any("mod_pubsub" in line for line in ejabberd)
    assert "access_rules:" in ejabberd and "  mod_privilege:" in ejabberd  # privileges need both
    prosody = uncommented((tmp_path / "p.cfg.lua").read_text())
    assert not any(line.startswith("modules_enabled") for line in prosody)
    assert prosody[0] == "component_ports = { 5347 }"  # global: before the Component line
    assert prosody[-2] == 'Component "clinic.hospital.test"'


@pytest.mark.requirement("I.7", "IV.8")
def test_snippets_set_the_servers_expiry_from_the_retention(tmp_path: Path) -> None:
    """The server's own archive and uploads expire with retention.messages_days."""
    code, _, err = init(
        "--messages-days=3",
        f"--output={tmp_path / 'x.toml'}",
        f"--prosody-snippet={tmp_path / 'p.cfg.lua'}",
        f"--ejabberd-snippet={tmp_path / 'e.yml'}",
    )
    assert code == 0, err
    assert load_settings(tmp_path / "x.toml").retention.messages_days == 3
    prosody = uncommented((tmp_path / "p.cfg.lua").read_text())
    assert 'archive_expires_after = "3d"' in prosody
    assert 'Component "upload.hospital.test" "http_file_share"' in prosody
    assert "  http_file_share_expires_after = 259200" in prosody  # 3 days in seconds
    # globals before the first Component line (after it they would belong to it)
    assert prosody.index('archive_expires_after = "3d"') < prosody.index(
        'Component "upload.hospital.test" "http_file_share"'
    )
    confine = block((tmp_path / "p.cfg.lua").read_text(), "clinic-confine", "--")
    assert 'clinic_confine_allowed = { "upload.hospital.test" }' in confine
    ejabberd_text = (tmp_path / "e.yml").read_text()
    ejabberd = uncommented(ejabberd_text)
    assert "  mod_http_upload_quota:" in ejabberd and "    max_days: 3" in ejabberd
    assert "    hosts: [upload.hospital.test]" in ejabberd
    assert "ejabberdctl delete_old_mam_messages all 3" in ejabberd_text
    assert "enable --now ejabberd-mam-expiry@3.timer" in ejabberd_text
    assert "allowed: [upload.hospital.test]" in block(ejabberd_text, "clinic-confine", "#")


@pytest.mark.requirement("I.12")
def test_init_takes_another_upload_service(tmp_path: Path) -> None:
    code, _, err = init(
        "--upload-service=share.hospital.test",
        f"--output={tmp_path / 'x.toml'}",
        f"--prosody-snippet={tmp_path / 'p.cfg.lua'}",
    )
    assert code == 0, err
    text = (tmp_path / "p.cfg.lua").read_text()
    assert 'Component "share.hospital.test" "http_file_share"' in text
    assert '{ "share.hospital.test" }' in block(text, "clinic-confine", "--")
    assert init("--messages-days=0", f"--output={tmp_path / 'y.toml'}")[0] == 2


@pytest.mark.parametrize(
    ("minutes", "days"), [(1, 1), (1440, 1), (1441, 2), (30 * 1440, 30), (90, 1)]
)
@pytest.mark.requirement("I.7")
def test_server_expiry_rounds_up_to_whole_days(minutes: int, days: int) -> None:
    expiry = ServerExpiry.from_minutes(minutes)
    assert expiry.days == days
    assert expiry.archive_expires_after == f"{days}d"
    assert expiry.upload_seconds == days * 86400
    with pytest.raises(ValueError, match="at least one day"):
        ServerExpiry(0)
