"""Typed settings from one TOML file.

The file is read once at start (``--config PATH`` or ``XMPP_CLINIC_CONFIG``) into one
:class:`Settings` object that is passed down; nothing deeper reads the file or the
environment. Every error names the key and the fix (:mod:`xmpp_clinic.config_errors`),
so an operator can repair the file from one line of output.

Types are strict: TOML's ``true`` is not a port, ``5347.0`` is not an integer and
``"yes"`` is not a boolean. Domains and JIDs are checked as RFC 7622 says, the way the
server will compare them (I.12).

Defaults are the strictest ones (I.12): end-to-end encryption required, manual device
approval, unapproved recipient keys stripped, no telemetry, federation off.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from xmpp_clinic.config_errors import ConfigError, explain
from xmpp_clinic.jids import InvalidJid, bare_jid, check_domain
from xmpp_clinic.settings.base import FilePath, Section
from xmpp_clinic.settings.bridge import BridgeSettings
from xmpp_clinic.settings.completeness import DeliverySettings, PartsSettings
from xmpp_clinic.settings.directory import DirectorySettings
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.settings.report import ClientsSettings, ReportSettings
from xmpp_clinic.settings.retention import BackupSettings, RetentionSettings

ENV_VAR = "XMPP_CLINIC_CONFIG"
_M = TypeVar("_M", bound=BaseModel)

__all__ = ["ENV_VAR", "ConfigError", "Settings", "load_settings", "parse_settings"]


def _person(raw: str) -> str:
    """A bare JID such as ``it-desk@hospital.example``; a resource is a mistake here."""
    if "/" in raw:
        raise InvalidJid(f"{raw!r} has a /resource; give the bare JID")
    return bare_jid(raw)


Domain = Annotated[str, AfterValidator(check_domain)]
BareJid = Annotated[str, AfterValidator(_person)]


class XmppSettings(Section):
    """How the component attaches to the hospital's server (XEP-0114)."""

    component_jid: Domain
    server_host: Annotated[str, Field(min_length=1)] = "127.0.0.1"
    server_port: Annotated[int, Field(ge=1, le=65535)] = 5347
    # Inline secret: never in repr() or a dump of the settings (I.12).
    secret: str | None = Field(default=None, repr=False, exclude=True)
    secret_file: FilePath | None = None
    user_domains: list[Domain] = Field(default_factory=list)
    admins: list[BareJid] = Field(default_factory=list)
    reconnect_max_delay: Annotated[float, Field(gt=0, le=60)] = 1.0


class StoreSettings(Section):
    """Where the gateway keeps its state (SQLite by default, PostgreSQL in production)."""

    url: str = "sqlite+aiosqlite:///xmpp-clinic.db"


class PolicySettings(Section):
    """The compliance pipeline's knobs (II.1, I.4, I.5)."""

    require_e2e: bool = True
    device_approval: Literal["manual", "first-device", "all"] = "manual"
    unapproved_recipient: Literal["strip", "reject"] = "strip"
    max_devices_per_person: Annotated[int, Field(ge=1, le=50)] = 3
    default_valid_days: Annotated[int, Field(ge=1, le=3650)] = 180
    device_refresh_seconds: Annotated[int, Field(ge=30)] = 3600


class ThreadSettings(Section):
    """Care-thread behaviour."""

    history_for_new_members: Literal["none", "all"] = "none"
    # Messages sent on join when the client asks for no particular history (XEP-0045 7.2.15).
    join_history: Annotated[int, Field(ge=0, le=500)] = 20


class LoggingSettings(Section):
    """Logs never carry message content, keys or secrets (I.12)."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = Field(default=False, alias="json")

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)


class PrivacySettings(Section):
    """The privacy notice served to every user (I.1, GDPR Art. 13)."""

    notice_url: str = "https://hospital.example/privacy/messaging"
    controller_contact: str = "mailto:dpo@hospital.example"


class Settings(Section):
    """All settings of one gateway instance."""

    xmpp: XmppSettings
    store: StoreSettings = StoreSettings()
    policy: PolicySettings = PolicySettings()
    threads: ThreadSettings = ThreadSettings()
    directory: DirectorySettings | None = None  # None: the small deployment mode (IV.2)
    parts: PartsSettings = PartsSettings()
    delivery: DeliverySettings = DeliverySettings()
    retention: RetentionSettings = RetentionSettings()
    backup: BackupSettings = BackupSettings()
    records: RecordsSettings = RecordsSettings()
    bridge: BridgeSettings = BridgeSettings()
    clients: ClientsSettings = ClientsSettings()
    report: ReportSettings = ReportSettings()
    logging: LoggingSettings = LoggingSettings()
    privacy: PrivacySettings = PrivacySettings()

    # Resolved at load time from secret / secret_file. A private attribute, not a field:
    # it is no key of the file (a `component_secret = ...` line is refused as unknown),
    # and it is never written back, dumped or logged.
    _component_secret: str = PrivateAttr(default="")

    @model_validator(mode="after")
    def _ward_threads_need_the_directory(self) -> Settings:
        if self.bridge.adt.ward_threads and self.directory is None:
            raise ValueError(
                "[bridge.adt] ward_threads binds case threads to directory groups: "
                "configure [directory] or remove ward_threads"
            )
        return self

    @property
    def component_secret(self) -> str:
        """The secret shared with the server (XEP-0114 handshake)."""
        return self._component_secret


def _read_secret(xmpp: XmppSettings) -> str:
    if xmpp.secret and xmpp.secret_file:
        raise ConfigError("xmpp.secret", "both secret and secret_file are set", "keep only one")
    if xmpp.secret_file is not None:
        path = xmpp.secret_file
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


def validate_settings(data: dict[str, Any], base: Path) -> Settings:
    """Check a config mapping without reading the secret; relative paths against ``base``.

    What ``init`` runs before it writes anything: the secret file may not exist yet.
    """
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise explain(exc, Settings) from None
    settings = resolve_paths(settings, base)
    store = StoreSettings(url=_check_store(settings.store.url, base))
    return settings.model_copy(update={"store": store})


def resolve_paths(section: _M, base: Path) -> _M:
    """``section`` with every relative path (in it and its subsections) taken against ``base``.

    Key files, secret files, CA files and folders are all written relative to the config
    file's folder, so one rule serves every section.
    """
    update: dict[str, Any] = {}
    for name in type(section).model_fields:
        value = getattr(section, name)
        if isinstance(value, Path) and not value.is_absolute():
            update[name] = base / value
        elif isinstance(value, BaseModel):
            update[name] = resolve_paths(value, base)
    return section.model_copy(update=update) if update else section


def parse_settings(data: dict[str, Any], base: Path) -> Settings:
    """Validate a config mapping and read its secret; relative paths against ``base``."""
    settings = validate_settings(data, base)
    settings._component_secret = _read_secret(settings.xmpp)
    return settings


def load_settings(path: Path | str | None = None) -> Settings:
    """Load the config named by ``path`` or by ``$XMPP_CLINIC_CONFIG``.

    Problems with the file itself are reported against what named it: ``--config`` or
    the environment variable, so the operator knows which one to correct.
    """
    source = "--config"
    if path is None:
        source = ENV_VAR
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
            source, f"cannot read {path} ({exc.strerror})", "check the path"
        ) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"{path} is not valid TOML: {exc}", "fix the syntax") from None
    return parse_settings(data, path.resolve().parent)


def secret_warnings(settings: Settings) -> list[str]:
    """Where the component secret is kept less carefully than it should be (I.12)."""
    found = []
    if settings.xmpp.secret:
        found.append(
            "xmpp.secret is set inline: the secret sits in the config file; "
            "move it to a file named by xmpp.secret_file (mode 0600)"
        )
    path = settings.xmpp.secret_file
    if path is not None:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:
            return found
        if mode & 0o077:
            who = "readable" if mode & 0o044 else "accessible"
            found.append(
                f"xmpp.secret_file {path} is {who} by group or others (mode {mode:04o}); "
                f"fix: chmod 600 {path}"
            )
    return found


def weakened_controls(settings: Settings) -> list[str]:
    """Settings that are valid but weaker than the defaults an auditor expects (I.12)."""
    found = secret_warnings(settings)
    if not settings.policy.require_e2e:
        found.append("policy.require_e2e = false: plaintext is accepted in care threads (II.1)")
    if settings.policy.device_approval == "all":
        found.append("policy.device_approval = 'all': every device is approved (demo/tests)")
    if not settings.xmpp.user_domains:
        found.append("xmpp.user_domains is empty: nobody can be made a member (IV.2)")
    if settings.directory is None:
        found.append(
            "no [directory]: small deployment mode; members are typed in by hand and not "
            "checked against the hospital directory (IV.2)"
        )
    if not settings.xmpp.admins:
        found.append("xmpp.admins is empty: no IT admin can use the ad-hoc commands")
    plain = [h for h in settings.records.attachment_hosts if h.startswith("http://")]
    if plain:
        found.append(
            f"records.attachment_hosts {', '.join(plain)}: documented files are fetched over "
            "plain HTTP; they stay encrypted, but which file is fetched when is visible on "
            "the network (II.3); use HTTPS"
        )
    return found
