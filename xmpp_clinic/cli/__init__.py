"""The ``xmpp-clinic`` command: thin; parses, calls a service, prints.

Verb groups live in sibling modules that define ``group`` (a ``typer.Typer``) and
``GROUP_NAME``; top-level verbs live in :mod:`xmpp_clinic.cli.gateway`. Both are found
here, so adding a verb group never touches this file.
"""

from __future__ import annotations

import importlib
import pkgutil

import typer

from xmpp_clinic import __version__

app = typer.Typer(
    name="xmpp-clinic",
    help="Compliance gateway for clinical messaging over XMPP (care threads, OMEMO policy).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: no <bool>/<str> type hints beside flags, errors in three short lines.
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"xmpp-clinic {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Compliance gateway for clinical messaging over XMPP."""


def _load_verbs() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "common":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
        group = getattr(module, "group", None)
        if isinstance(group, typer.Typer):
            app.add_typer(group, name=module.GROUP_NAME)


_load_verbs()


def main() -> None:
    app()
