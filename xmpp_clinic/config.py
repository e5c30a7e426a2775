"""Typed settings from one TOML file.

The file is read once at start (``--config PATH`` or ``XMPP_CLINIC_CONFIG``) into one
:class:`Settings` object that is passed down; nothing deeper reads the file or the
environment. Every error names the key and the fix, so an operator can repair the file
from one line of output.

Defaults are the strictest ones (I.12): end-to-end encryption required, manual device
approval, unapproved recipient keys stripped, no telemetry, federation off.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_VAR = "XMPP_CLINIC_CONFIG"


class ConfigError(Exception):
    """A configuration problem; ``str()`` is one line naming the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"config error at '{key}': {problem}; fix: {fix}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class XmppSettings(_Section):
    """How the component attaches to the hospital's server (XEP-0114)."""

    component_jid: Annotated[str, Field(min_length=3)]
    server_host: str = "127.0.0.1"
    server_port: Annotated[int, Field(ge=1, le=65535)] = 5347
    # Inline secret: never in repr() or a dump of the settings (I.12).
    secret: str | None = Field(default=None, repr=False, exclude=True)
    secret_file: Path | None = None
    user_domains: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    reconnect_max_delay: Annotated[float, Field(gt=0, le=60)] = 1.0

    @field_validator("component_jid")
    @classmethod
    def _bare_domain(cls, value: str) -> str:
        if "@" in value or "/" in value:
            raise ValueError("must be a bare domain such as clinic.hospital.example")
        return value.lower()


class StoreSettings(_Section):
    """Where the gateway keeps its state (SQLite by default, PostgreSQL in production)."""

    url: str = "sqlite+aiosqlite:///xmpp-clinic.db"


class PolicySettings(_Section):
    """The compliance pipeline's knobs (II.1, I.4, I.5)."""

    require_e2e: bool = True
    device_approval: Literal["manual", "first-device", "all"] = "manual"
    unapproved_recipient: Literal["strip", "reject"] = "strip"
    max_devices_per_person: Annotated[int, Field(ge=1, le=50)] = 3
    default_valid_days: Annotated[int, Field(ge=1, le=3650)] = 180
    device_refresh_seconds: Annotated[int, Field(ge=30)] = 3600


class ThreadSettings(_Section):
    """Care-thread behaviour."""

    history_for_new_members: Literal["none", "all"] = "none"


class RetentionSettings(_Section):
    """Retention windows (I.7, IV.8, II.3)."""

    messages_days: Annotated[int, Field(ge=1)] = 30
    audit_metadata_days: Annotated[int, Field(ge=1)] = 365


class BridgeSettings(_Section):
    """The HIS bridge (I.6); off until configured."""

    enabled: bool = False
    listen: str = "127.0.0.1:8787"


class BackupSettings(_Section):
    """Encrypted backups to hospital-held keys (I.9)."""

    directory: Path | None = None
    recipients: list[str] = Field(default_factory=list)


class LoggingSettings(_Section):
    """Logs never carry message content, keys or secrets (I.12)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PrivacySettings(_Section):
    """The privacy notice served to every user (I.1, GDPR Art. 13)."""

    notice_url: str = "https://hospital.example/privacy/messaging"
    controller_contact: str = "mailto:dpo@hospital.example"


class Settings(_Section):
    """All settings of one gateway instance."""

    xmpp: XmppSettings
    store: StoreSettings = StoreSettings()
    policy: PolicySettings = PolicySettings()
    threads: ThreadSettings = ThreadSettings()
    retention: RetentionSettings = RetentionSettings()
    bridge: BridgeSettings = BridgeSettings()
    backup: BackupSettings = BackupSettings()
    logging: LoggingSettings = LoggingSettings()
    privacy: PrivacySettings = PrivacySettings()

    # Resolved at load time from secret / secret_file; never written back or logged.
    component_secret: str = Field(default="", exclude=True, repr=False)


_FIXES: dict[str, str] = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
}


def _key_of(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def _known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    current: type[BaseModel] = model
    for part in loc[:-1]:
        field = current.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return [f.alias or name for name, f in current.model_fields.items()]


def _explain(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = _key_of(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        known = _known_keys(Settings, loc)
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        fix = (
            f"did you mean '{close[0]}'?" if close else "remove it; known keys: " + ", ".join(known)
        )
        return ConfigError(key, "unknown key", fix)
    if kind == "missing":
        return ConfigError(key, "required key is missing", "add it")
    msg = str(err["msg"])
    return ConfigError(key, msg, f"set '{key}' to a valid value")


def _read_secret(xmpp: XmppSettings, base: Path) -> str:
    if xmpp.secret and xmpp.secret_file:
        raise ConfigError("xmpp.secret", "both secret and secret_file are set", "keep only one")
    if xmpp.secret_file is not None:
        path = xmpp.secret_file if xmpp.secret_file.is_absolute() else base / xmpp.secret_file
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                "xmpp.secret_file",
                f"cannot read {path} ({exc.strerror})",
                "create the file with the component secret or correct the path",
            ) from None
        if not value:
            raise ConfigError("xmpp.secret_file", f"{path} is empty", "write the secret into it")
        return value
    if xmpp.secret:
        return xmpp.secret
    raise ConfigError(
        "xmpp.secret_file",
        "no component secret configured",
        "set secret_file to a file holding the secret shared with the server",
    )


def _check_store(url: str, base: Path) -> str:
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix):
        raw = url[len(prefix) :]
        if raw in ("", ":memory:"):
            return url
        path = Path(raw)
        if not path.is_absolute():
            path = base / path
        parent = path.parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise ConfigError(
                "store.url",
                f"directory {parent} does not exist or is not writable",
                "create it or point store.url at a writable location",
            )
        return prefix + str(path)
    if url.startswith("postgresql+asyncpg://"):
        return url
    raise ConfigError(
        "store.url",
        f"unsupported database URL scheme in {url.split(':', 1)[0]!r}",
        "use sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB",
    )


def parse_settings(data: dict[str, Any], base: Path) -> Settings:
    """Validate a config mapping; relative paths are resolved against ``base``."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise _explain(exc) from None
    secret = _read_secret(settings.xmpp, base)
    store = StoreSettings(url=_check_store(settings.store.url, base))
    return settings.model_copy(update={"component_secret": secret, "store": store})


def load_settings(path: Path | str | None = None) -> Settings:
    """Load the config named by ``path`` or by ``$XMPP_CLINIC_CONFIG``."""
    if path is None:
        env = os.environ.get(ENV_VAR)
        if not env:
            raise ConfigError(
                "--config", "no config file given", f"pass --config PATH or set {ENV_VAR}"
            )
        path = env
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            "--config", f"cannot read {path} ({exc.strerror})", "check the path"
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "--config", f"{path} is not valid TOML: {exc}", "fix the syntax"
        ) from None
    return parse_settings(data, path.resolve().parent)
