"""``xmpp-clinic init``: a working config with the strictest defaults, and server snippets.

Everything is checked before anything is written: the values (as ``check-config``
would), that no file is overwritten without ``--force``, and that every folder a file
goes into already exists. Missing folders are not created: where the config, the
secret and the state live is the operator's decision (owner, mode), so ``init`` names
the folder and the command that creates it, and exits 2 (I.12).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tomli_w
import typer

from xmpp_clinic.cli.common import EXIT_USAGE, fail, person
from xmpp_clinic.config import ConfigError, Settings, validate_settings, weakened_controls
from xmpp_clinic.jids import InvalidJid, check_domain
from xmpp_clinic.records.keys import create_key
from xmpp_clinic.settings.retention import RetentionSettings
from xmpp_clinic.templates import (
    EJABBERD_TEMPLATE,
    PROSODY_TEMPLATE,
    ServerExpiry,
    render,
    upload_jid,
)

STATE_DIR = Path("/var/lib/xmpp-clinic")

# Which option set which key, so a config error names what the operator typed.
_OPTIONS = {
    "xmpp.component_jid": "--component-jid",
    "xmpp.server_host": "--server-host",
    "xmpp.server_port": "--server-port",
    "xmpp.secret_file": "--secret-file",
    "xmpp.user_domains": "--domain",
    "xmpp.admins": "--admin",
    "store.url": "--store",
    "retention.messages_days": "--messages-days",
}


def _domain(raw: str) -> str:
    try:
        return check_domain(raw)
    except InvalidJid as exc:
        raise typer.BadParameter(str(exc)) from None


@dataclass(frozen=True)
class _Target:
    """One file ``init`` writes, and the option that named it."""

    option: str
    path: Path
    text: str
    mode: int | None = None  # None: the umask decides; secrets are 0600


def _state_store(output: Path) -> str:
    """SQLite beside the config, except under /etc, where state belongs in /var/lib."""
    config_dir = output.resolve().parent
    folder = STATE_DIR if config_dir.is_relative_to("/etc") else config_dir
    if not folder.is_dir():
        fail(
            f"--store: the state folder {folder} does not exist; create it for the user "
            f"that runs the gateway (install -d -o xmpp-clinic -m 700 {folder}) "
            "or pass --store URL",
            EXIT_USAGE,
        )
    return f"sqlite+aiosqlite:///{folder / 'xmpp-clinic.db'}"


def _config_data(
    domain: str,
    component: str,
    server_host: str,
    server_port: int,
    secret_path: Path,
    store_url: str,
    admins: list[str],
    messages_days: int,
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
        # The server snippets set the server's own expiry from this (I.7, IV.8).
        "retention": {"messages_days": messages_days},
        "privacy": {
            "notice_url": f"https://{domain}/privacy/messaging",
            "controller_contact": f"mailto:dpo@{domain}",
        },
        "logging": {"level": "INFO", "json": False},
    }


def _validated(data: dict[str, Any], output: Path) -> Settings:
    try:
        return validate_settings(data, output.resolve().parent)
    except ConfigError as exc:
        option = _OPTIONS.get(exc.key.split("[", 1)[0], "--output")
        fail(f"{option}: {exc}", EXIT_USAGE)


def _check_folder(option: str, path: Path) -> None:
    folder = path.parent.resolve()
    if not folder.is_dir():
        fail(
            f"{option}: folder {folder} does not exist; create it first "
            f"(install -d -m 750 {folder}); init does not create folders",
            EXIT_USAGE,
        )


def _check_targets(targets: list[_Target], force: bool) -> None:
    """Every folder exists and nothing is overwritten unless asked: before any write."""
    for target in targets:
        _check_folder(target.option, target.path)
        if target.path.exists() and not force and target.mode is None:
            fail(f"{target.option}: {target.path} exists; pass --force to overwrite it", EXIT_USAGE)


def _write(target: _Target) -> None:
    if target.mode is None:
        target.path.write_text(target.text, encoding="utf-8")
        return
    fd = os.open(target.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, target.mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(target.text)


def snippet_values(
    settings: Settings,
    *,
    server_host: str,
    server_port: int,
    secret_file: Path,
    upload_service: str,
) -> dict[str, str]:
    """The placeholders of both server snippets, from the validated config.

    The server's expiry comes from ``retention.messages_days`` (I.7, IV.8); see
    :class:`~xmpp_clinic.templates.ServerExpiry` for the rounding to whole days.
    """
    expiry = ServerExpiry(settings.retention.messages_days)
    return {
        "component_jid": settings.xmpp.component_jid,
        "server_host": server_host,
        "server_port": str(server_port),
        "secret_file": str(secret_file),
        "upload_jid": upload_service,
        **expiry.values(),
    }


def init(
    domain: Annotated[
        str,
        typer.Option(parser=_domain, metavar="DOMAIN", help="The hospital's user domain."),
    ],
    output: Annotated[Path, typer.Option(metavar="PATH", help="Where to write the config file.")],
    component_jid: Annotated[
        str | None,
        typer.Option(
            parser=_domain, metavar="DOMAIN", help="Gateway domain; default clinic.DOMAIN"
        ),
    ] = None,
    server_host: Annotated[
        str, typer.Option(metavar="HOST", help="Server's component host.")
    ] = "127.0.0.1",
    server_port: Annotated[
        int, typer.Option(metavar="PORT", help="Server's component port.")
    ] = 5347,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            metavar="PATH",
            help="File with the component secret; created (0600) when missing. "
            "Default: component.secret beside the config.",
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            metavar="URL",
            help="Database URL. Default: SQLite in /var/lib/xmpp-clinic when the config is "
            "under /etc, else beside the config.",
        ),
    ] = None,
    prosody_snippet: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Also write the Prosody snippet here.")
    ] = None,
    ejabberd_snippet: Annotated[
        Path | None, typer.Option(metavar="PATH", help="Also write the ejabberd snippet here.")
    ] = None,
    messages_days: Annotated[
        int,
        typer.Option(
            metavar="DAYS",
            help="Keep messages this many days (retention.messages_days); the snippets "
            "set the server's own archive and upload expiry to the same.",
        ),
    ] = RetentionSettings().messages_days,
    upload_service: Annotated[
        str | None,
        typer.Option(
            parser=_domain,
            metavar="DOMAIN",
            help="The upload service the snippets configure and confinement allows; "
            "default upload.DOMAIN",
        ),
    ] = None,
    admin: Annotated[
        list[str] | None,
        typer.Option(
            parser=person,
            metavar="JID",
            help="IT admin allowed to use the ad-hoc commands (repeatable).",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite an existing config and snippets.")
    ] = False,
) -> None:
    """Write a working config with the strictest defaults, and the server snippets.

    Folders are not created: make them first (see README, "Running it as a service").
    """
    _check_folder("--output", output)
    component = component_jid or f"clinic.{domain}"
    secret_path = (secret_file or output.with_name("component.secret")).resolve()
    store_url = store or _state_store(output)
    data = _config_data(
        domain,
        component,
        server_host,
        server_port,
        secret_path,
        store_url,
        admin or [],
        messages_days,
    )
    settings = _validated(data, output)
    values = snippet_values(
        settings,
        server_host=server_host,
        server_port=server_port,
        secret_file=secret_path,
        upload_service=upload_service or upload_jid(domain),
    )
    targets = [_Target("--output", output, tomli_w.dumps(data))]
    if not secret_path.exists():
        targets.append(
            _Target("--secret-file", secret_path, secrets.token_urlsafe(32) + "\n", 0o600)
        )
    for option, path, template in (
        ("--prosody-snippet", prosody_snippet, PROSODY_TEMPLATE),
        ("--ejabberd-snippet", ejabberd_snippet, EJABBERD_TEMPLATE),
    ):
        if path is not None:
            targets.append(_Target(option, path, render(template, **values)))
    _check_targets(targets, force)
    for target in targets:
        _write(target)
        created = " (mode 0600)" if target.mode is not None else ""
        typer.echo(f"wrote {target.path}{created}")
    # The documentation member's key (I.6): the gateway refuses to start without it once
    # a thread was documented, so it is made here, once, and never overwritten.
    key_file = settings.records.key_file
    if not key_file.exists():
        create_key(key_file)
        typer.echo(f"wrote {key_file} (mode 0600; back it up with the store)")
    for warning in weakened_controls(settings):
        typer.echo(f"warning: {warning}", err=True)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
