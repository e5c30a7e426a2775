"""Top-level verbs: run, check-config, demo (``init`` lives in :mod:`.init_config`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from xmpp_clinic.cli.common import EXIT_USAGE, ConfigOption, fail, run, settings_from
from xmpp_clinic.config import Settings, weakened_controls

log = logging.getLogger("xmpp_clinic.config")


def log_warnings(settings: Settings) -> None:
    """What ``check-config`` warns about, logged once at WARNING when the gateway starts."""
    for warning in weakened_controls(settings):
        log.warning(warning)


def run_verb(config: ConfigOption = None) -> None:
    """Run the gateway until SIGTERM or Ctrl-C."""
    from xmpp_clinic.app import run_gateway
    from xmpp_clinic.logs import setup_logging
    from xmpp_clinic.records.keys import RecordsKeyError

    settings = settings_from(config)
    setup_logging(settings.logging)
    log_warnings(settings)
    try:
        run(run_gateway(settings))
    except RecordsKeyError as exc:  # the documentation key is missing: a config problem
        fail(str(exc), EXIT_USAGE)


def check_config(config: ConfigOption = None) -> None:
    """Validate the config without connecting; exit 2 and name the key when it is wrong.

    Valid but weakened settings (plaintext allowed, a secret others can read, an
    inline secret) are printed as warnings on stderr; the exit code stays 0 (I.12).
    """
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


def demo(
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep",
            metavar="DIR",
            help="Keep the demo's config, store and keys in DIR (new or empty), to run "
            "`report` or `audit verify` on what it did.",
        ),
    ] = None,
) -> None:
    """Start a private Prosody, the gateway and scripted clients, and show what happens."""
    from xmpp_clinic.dev.demo import run_demo

    run(run_demo(keep))


def register(app: typer.Typer) -> None:
    app.command("run")(run_verb)
    app.command("check-config")(check_config)
    app.command("demo")(demo)
