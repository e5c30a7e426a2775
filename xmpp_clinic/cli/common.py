"""What every CLI verb shares: loading the config, exit codes, printing."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from xmpp_clinic.config import ConfigError, Settings, load_settings
from xmpp_clinic.store import Store, StoreUnavailable

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Config file (TOML). Default: $XMPP_CLINIC_CONFIG.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print one line to stderr and exit with ``code``."""
    typer.echo(f"xmpp-clinic: {message}", err=True)
    raise typer.Exit(code)


def settings_from(path: Path | None) -> Settings:
    """Load settings or exit 2 with the line that names the key and the fix."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        fail(str(exc), EXIT_USAGE)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine; a store that is down is a failure with a clear line, not a trace."""
    try:
        return asyncio.run(coro)
    except StoreUnavailable as exc:
        fail(f"{exc}; check [store] url and that the database is reachable")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def with_store(settings: Settings, action: Callable[[Store], Awaitable[T]]) -> T:
    """Open and migrate the store, run ``action`` on it, close it; store faults exit 1."""

    async def go() -> T:
        store = Store(settings.store.url)
        try:
            await store.migrate()
            return await action(store)
        finally:
            await store.close()

    return run(go())


def print_json(data: Any) -> None:
    """JSON for scripts: timestamps in ISO 8601, everything else as plain values."""
    json.dump(data, sys.stdout, indent=2, default=_json_value)
    sys.stdout.write("\n")
