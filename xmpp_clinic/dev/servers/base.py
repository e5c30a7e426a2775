"""Common life cycle of a private XMPP server on loopback (start, stop, restart, logs)."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

from xmpp_clinic.settings.retention import RetentionSettings
from xmpp_clinic.templates import ServerExpiry, upload_jid

from .ports import LOOPBACK, all_closed, all_open, free_port, port_open, wait_until

ServerKind = Literal["prosody", "ejabberd"]

DEFAULT_DOMAIN = "hospital.test"
DEFAULT_COMPONENT_JID = "clinic.hospital.test"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
INSTALL_HINT = "run: make deps"
KEEP_RUN_ENV = "XMPP_CLINIC_KEEP_RUN"

_TAIL_BYTES = 64 * 1024


class DevServerError(RuntimeError):
    """A development server could not be started, stopped or used."""


def random_secret() -> str:
    """Return a random secret made of URL-safe characters (safe in Lua and YAML strings)."""
    return secrets.token_urlsafe(24)


def tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of ``path`` (empty when the file does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - _TAIL_BYTES))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def read_since(path: Path, offset: int) -> str:
    """Return what was appended to ``path`` after byte ``offset`` (at most the last 64 KiB)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - _TAIL_BYTES))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


@dataclass(kw_only=True)
class DevServer(ABC):
    """A private XMPP server on loopback, owned by this process.

    Subclasses provide the server specific parts (configuration, launch, termination,
    account creation); this class owns the port handling and the life cycle. The ports
    are picked once per instance, so :meth:`restart` reuses the same ports and data.
    """

    kind: ServerKind
    run_dir: Path
    domain: str = DEFAULT_DOMAIN
    component_jid: str = DEFAULT_COMPONENT_JID
    component_secret: str = field(default_factory=random_secret, repr=False)
    host: str = LOOPBACK
    c2s_port: int = field(default_factory=free_port)
    component_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    muc_domain: str = ""
    # The server's own archive and upload expiry, as the init snippets set it (I.7, IV.8).
    expiry_days: int = field(default_factory=lambda: RetentionSettings().messages_days)
    start_timeout: float = START_TIMEOUT
    stop_timeout: float = STOP_TIMEOUT
    last_start_seconds: float = field(default=0.0, init=False)
    last_stop_seconds: float = field(default=0.0, init=False)
    _running: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        """Normalise the run folder and derive the MUC domain from the domain."""
        self.run_dir = Path(self.run_dir).absolute()
        if not self.muc_domain:
            self.muc_domain = f"conference.{self.domain}"

    # -- public life cycle -------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and the next :meth:`stop`."""
        return self._running

    @property
    def home(self) -> Path:
        """The folder holding this server's configuration, data and logs."""
        return self.run_dir / self.kind

    @property
    def upload_jid(self) -> str:
        """The XEP-0363 upload service (listed in the user domain's disco#items)."""
        return upload_jid(self.domain)

    @property
    def upload_url_base(self) -> str:
        """Where upload slots' PUT and GET URLs start (plain HTTP on loopback)."""
        return f"http://{self.host}:{self.http_port}/"

    @property
    def expiry(self) -> ServerExpiry:
        """The server's own expiry of archives and uploads, in whole days."""
        return ServerExpiry(self.expiry_days)

    def start(self) -> None:
        """Start the server and block until its c2s and component ports accept TCP."""
        if self._running:
            return
        missing = self._missing_binaries()
        if missing:
            raise DevServerError(f"{self.kind} is not installed ({missing}); {INSTALL_HINT}")
        began = time.monotonic()
        self._check_ports_free()
        self.home.mkdir(parents=True, exist_ok=True)
        self._prepare()
        self._launch()
        _live_servers[id(self)] = self
        self._wait_ready()
        self._running = True
        self.last_start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the server (if this process started it) and wait until its ports close."""
        if not self._running:
            return
        began = time.monotonic()
        self._shutdown()
        self.last_stop_seconds = time.monotonic() - began

    def restart(self) -> None:
        """Stop and start again on the same ports with the same data."""
        self.stop()
        self.start()

    def register_many(self, users: dict[str, str]) -> list[str]:
        """Create every ``user: password`` account; return the bare JIDs in order."""
        return [self.register(user, password) for user, password in users.items()]

    def log_tail(self, lines: int = 40) -> str:
        """Return the last ``lines`` lines of each of the server's log files."""
        parts = []
        for path in self._log_files():
            text = tail(path, lines)
            if text:
                parts.append(f"==> {path} <==\n{text}")
        return "\n".join(parts) if parts else f"(no log output in {self.home})"

    def jid(self, user: str) -> str:
        """Return the bare JID of ``user`` on this server."""
        return f"{user}@{self.domain}"

    def __enter__(self) -> Self:
        """Start the server for the duration of a ``with`` block."""
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop the server at the end of a ``with`` block."""
        self.stop()

    # -- helpers for subclasses --------------------------------------------------------

    def _all_ports(self) -> list[int]:
        """Every port this server listens on (checked to be closed after a stop)."""
        return [self.c2s_port, self.component_port, *self._extra_ports()]

    def _ready_ports(self) -> list[int]:
        """Ports that must accept TCP before :meth:`start` returns."""
        return self._all_ports()

    def _extra_ports(self) -> list[int]:
        """Additional listening ports (HTTP), empty by default."""
        return []

    def _is_ready(self) -> bool:
        """True once the server serves clients; by default, once its ports accept TCP."""
        return all_open(self.host, self._ready_ports())()

    def _check_ports_free(self) -> None:
        """Refuse to start when something already listens on one of our ports."""
        busy = [port for port in self._all_ports() if port_open(self.host, port)]
        if busy:
            raise DevServerError(
                f"{self.kind}: ports {busy} on {self.host} are already in use "
                "(a server left running, or another program took them)"
            )

    def _wait_ready(self) -> None:
        """Wait for the listening ports; on failure clean up and raise with the log tail."""
        reason = wait_until(self._is_ready, self.start_timeout, abort=self._death_reason)
        if reason is None:
            return
        with contextlib.suppress(DevServerError):
            self._terminate()
        _live_servers.pop(id(self), None)
        raise DevServerError(
            f"{self.kind} did not become ready on {self.host} "
            f"ports {self._ready_ports()}: {reason}\n{self.log_tail()}"
        )

    def _shutdown(self) -> None:
        """Terminate the process and wait until none of the ports accepts connections."""
        try:
            self._terminate()
            reason = wait_until(all_closed(self.host, self._all_ports()), self.stop_timeout)
        finally:
            self._running = False
            _live_servers.pop(id(self), None)
        if reason is not None:
            raise DevServerError(
                f"{self.kind} still listens on {self._all_ports()} after stop: {reason}"
            )

    def _require_running(self) -> None:
        """Raise unless the server is running (for operations that need a live server)."""
        if not self._running:
            raise DevServerError(f"{self.kind} is not running; call start() first")

    # -- server specific parts ---------------------------------------------------------

    @abstractmethod
    def _missing_binaries(self) -> str | None:
        """Describe what is missing to run this server, or None when all is installed."""

    @abstractmethod
    def _prepare(self) -> None:
        """Create folders and write configuration (called before every launch)."""

    @abstractmethod
    def _launch(self) -> None:
        """Start the server process without waiting for it to listen."""

    @abstractmethod
    def _death_reason(self) -> str | None:
        """Return why the launched process is gone, or None while it may still come up."""

    @abstractmethod
    def _terminate(self) -> None:
        """Stop the launched process and wait for it to exit; a no-op when none runs."""

    @abstractmethod
    def _log_files(self) -> list[Path]:
        """The log files worth showing when something goes wrong."""

    @abstractmethod
    def register(self, user: str, password: str) -> str:
        """Create (or reset the password of) ``user``; return the bare JID."""


_live_servers: dict[int, DevServer] = {}
_private_dirs: list[Path] = []


def remove_at_exit(folder: Path) -> None:
    """Delete ``folder`` when this process exits (unless ``XMPP_CLINIC_KEEP_RUN=1``)."""
    _private_dirs.append(folder)


@atexit.register
def _clean_up() -> None:
    """Stop servers a crashed test or demo left running, then drop private folders."""
    for server in list(_live_servers.values()):
        with contextlib.suppress(Exception):
            server._shutdown()
    if os.environ.get(KEEP_RUN_ENV) == "1":
        return
    for folder in _private_dirs:
        shutil.rmtree(folder, ignore_errors=True)
