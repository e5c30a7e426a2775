"""What every CLI verb shares: loading the config, exit codes, argument checks, printing.

Arguments are checked where they are parsed: a malformed JID, a device id out of range
or a title with a line break is bad usage (exit 2) with a line naming the argument,
before any config is read or the store is touched.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import unicodedata
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from xmpp_clinic.config import ConfigError, Settings, load_settings
from xmpp_clinic.jids import InvalidJid, bare_jid
from xmpp_clinic.limits import MAX_REASON_CHARS, MAX_TITLE_CHARS
from xmpp_clinic.omemo import BY_SHORT, BY_URI, MAX_DEVICE_ID, MIN_DEVICE_ID, VERSIONS
from xmpp_clinic.store import Store, StoreUnavailable

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


def verb_group(help_text: str) -> typer.Typer:
    """A verb group with plain help: flags without type hints, errors as one short block."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)


def person(raw: str) -> str:
    """A person's bare JID (RFC 7622 lengths, PRECIS), normalised; else bad usage."""
    if "/" in raw:
        raise typer.BadParameter(f"{raw!r} has a /resource; give the bare JID")
    try:
        return bare_jid(raw)
    except InvalidJid as exc:
        raise typer.BadParameter(str(exc)) from None


def _one_line(text: str) -> bool:
    """No control characters and no line or paragraph breaks (emoji joiners are fine)."""
    return not any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in text)


def title_text(raw: str) -> str:
    """A title shown to every member: one line, at most ``MAX_TITLE_CHARS``."""
    if not _one_line(raw):
        raise typer.BadParameter("must be one line without control characters")
    if len(raw) > MAX_TITLE_CHARS:
        raise typer.BadParameter(f"is {len(raw)} characters; at most {MAX_TITLE_CHARS}")
    return raw.strip()


def reason_text(raw: str) -> str:
    """Why a change was made, kept in the audit log (I.5, III.3): one line, not empty."""
    text = raw.strip()
    if not text:
        raise typer.BadParameter("must not be empty: say why (it is kept in the audit log)")
    if not _one_line(text) or len(text) > MAX_REASON_CHARS:
        raise typer.BadParameter(f"must be one line of at most {MAX_REASON_CHARS} characters")
    return text


def omemo_namespace(raw: str) -> str:
    """``omemo``/``omemo2`` or a full namespace URI, as the namespace URI."""
    version = BY_SHORT.get(raw) or BY_URI.get(raw)
    if version is None:
        known = ", ".join(f"{v.short} ({v.uri})" for v in VERSIONS)
        raise typer.BadParameter(f"{raw!r} is not an OMEMO version; use one of {known}")
    return version.uri


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        metavar="PATH",
        help="Config file (TOML). Default: $XMPP_CLINIC_CONFIG.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PersonArg = Annotated[
    str, typer.Argument(parser=person, metavar="JID", help="The person's bare JID.")
]
DeviceIdArg = Annotated[
    int,
    typer.Argument(
        min=MIN_DEVICE_ID, max=MAX_DEVICE_ID, metavar="DEVICE_ID", help="The OMEMO device id."
    ),
]
NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        parser=omemo_namespace,
        metavar="NS",
        help="omemo (" + VERSIONS[0].uri + ") or omemo2 (" + VERSIONS[1].uri + "); "
        "needed when the device id exists in both.",
        show_default=False,
    ),
]
ReasonOption = Annotated[
    str,
    typer.Option(
        "--reason", parser=reason_text, metavar="TEXT", help="Why (kept in the audit log)."
    ),
]


def actor() -> str:
    """Who made a change from the command line, for the audit log (IV.4).

    Operators run the verbs as the service user (``sudo -u xmpp-clinic``, so the store's
    files stay its own); the person is then the one sudo names, not the service user.
    """
    person = os.environ.get("SUDO_USER")
    if person:
        return f"cli:{person}"
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no passwd entry (containers): still a CLI change
        return "cli:unknown"


def plural(count: int, word: str) -> str:
    """``1 member``, ``2 members``."""
    return f"{count} {word}" + ("" if count == 1 else "s")


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
