"""Top-level verbs: run, init, check-config, demo."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer

from xmpp_clinic.cli.common import EXIT_USAGE, ConfigOption, fail, run, settings_from
from xmpp_clinic.config import ConfigError, Settings, parse_settings
from xmpp_clinic.templates import EJABBERD_TEMPLATE, PROSODY_TEMPLATE, render


def run_verb(config: ConfigOption = None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C."""
    from xmpp_clinic.app import run_gateway
    from xmpp_clinic.logs import setup_logging

    settings = settings_from(config)
    setup_logging(settings.logging)
    run(run_gateway(settings))


def check_config(config: ConfigOption = None) -> None:
    """Validate the config without connecting; exit 2 and name the key when it is wrong."""
    settings = settings_from(config)
    typer.echo(
        f"config OK: component {settings.xmpp.component_jid} -> "
        f"{settings.xmpp.server_host}:{settings.xmpp.server_port}, "
        f"store {settings.store.url.split(':', 1)[0]}, "
        f"e2e required: {settings.policy.require_e2e}, "
        f"device approval: {settings.policy.device_approval}"
    )
    for warning in weakened_controls(settings):
        typer.echo(f"warning: {warning}", err=True)


def weakened_controls(settings: Settings) -> list[str]:
    """Settings that are valid but weaker than the defaults an auditor expects (I.12)."""
    found = []
    if not settings.policy.require_e2e:
        found.append("policy.require_e2e = false: plaintext is accepted in care threads (II.1)")
    if settings.policy.device_approval == "all":
        found.append("policy.device_approval = 'all': every device is approved (demo/tests)")
    if not settings.xmpp.user_domains:
        found.append("xmpp.user_domains is empty: nobody can be made a member (IV.2)")
    if not settings.xmpp.admins:
        found.append("xmpp.admins is empty: no IT admin can use the ad-hoc commands")
    return found


def _write_secret(path: Path) -> bool:
    """Create a random component secret readable by the owner only; False if it existed."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    return True


def init(
    domain: Annotated[str, typer.Option(help="The hospital's user domain, e.g. hospital.example")],
    output: Annotated[Path, typer.Option(help="Where to write the config file")],
    component_jid: Annotated[
        str | None, typer.Option(help="Gateway domain; default clinic.<domain>")
    ] = None,
    server_host: Annotated[str, typer.Option(help="Server's component host")] = "127.0.0.1",
    server_port: Annotated[int, typer.Option(help="Server's component port")] = 5347,
    secret_file: Annotated[
        Path | None,
        typer.Option(help="File with the component secret; created (0600) when missing"),
    ] = None,
    store: Annotated[str | None, typer.Option(help="Database URL")] = None,
    prosody_snippet: Annotated[
        Path | None, typer.Option(help="Also write the Prosody config snippet here")
    ] = None,
    ejabberd_snippet: Annotated[
        Path | None, typer.Option(help="Also write the ejabberd config snippet here")
    ] = None,
    admin: Annotated[
        list[str] | None,
        typer.Option(help="JID of an IT admin allowed to use ad-hoc commands (repeatable)"),
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing config")] = False,
) -> None:
    """Write a working config with the strictest defaults, and the server snippets."""
    if output.exists() and not force:
        fail(f"{output} exists; pass --force to overwrite it", EXIT_USAGE)
    component = component_jid or f"clinic.{domain}"
    secret_path = (secret_file or output.with_name("component.secret")).resolve()
    data = _config_data(
        domain, component, server_host, server_port, secret_path,
        store or _default_store(output), admin or [],
    )  # fmt: skip
    created = _write_secret(secret_path)
    try:
        parse_settings(data, output.resolve().parent)
    except ConfigError as exc:
        if created:
            secret_path.unlink()
        fail(str(exc), EXIT_USAGE)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(tomli_w.dumps(data), encoding="utf-8")
    typer.echo(f"wrote {output}")
    if created:
        typer.echo(f"created component secret {secret_path} (mode 0600)")
    values = {
        "component_jid": component,
        "server_host": server_host,
        "server_port": str(server_port),
        "secret_file": str(secret_path),
    }
    for target, template in (
        (prosody_snippet, PROSODY_TEMPLATE),
        (ejabberd_snippet, EJABBERD_TEMPLATE),
    ):
        if target is not None:
            target.write_text(render(template, **values), encoding="utf-8")
            typer.echo(f"wrote {target}")


def _default_store(output: Path) -> str:
    """SQLite beside the config, except under /etc, where state belongs in /var/lib."""
    config_dir = output.resolve().parent
    if config_dir.is_relative_to("/etc"):
        state = Path("/var/lib/xmpp-clinic")
        state.mkdir(mode=0o700, parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{state / 'xmpp-clinic.db'}"
    return f"sqlite+aiosqlite:///{config_dir / 'xmpp-clinic.db'}"


def _config_data(
    domain: str,
    component: str,
    server_host: str,
    server_port: int,
    secret_path: Path,
    store_url: str,
    admins: list[str],
) -> dict[str, Any]:
    """The config ``init`` writes: the strictest defaults, spelled out for the operator."""
    return {
        "xmpp": {
            "component_jid": component,
            "server_host": server_host,
            "server_port": server_port,
            "secret_file": str(secret_path),
            "user_domains": [domain],
            "admins": admins,
        },
        "store": {"url": store_url},
        "policy": {"device_approval": "manual", "unapproved_recipient": "strip"},
        "threads": {"history_for_new_members": "none"},
        "privacy": {
            "notice_url": f"https://{domain}/privacy/messaging",
            "controller_contact": f"mailto:dpo@{domain}",
        },
        "logging": {"level": "INFO", "json": False},
    }


def demo() -> None:
    """Start a private Prosody, the gateway and scripted clients, and show what happens."""
    from xmpp_clinic.dev.demo import run_demo

    run(run_demo())


def register(app: typer.Typer) -> None:
    app.command("run")(run_verb)
    app.command("init")(init)
    app.command("check-config")(check_config)
    app.command("demo")(demo)
