"""A private Prosody 0.12 on loopback (Debian's ``prosody`` and ``prosody-modules``)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .base import DevServer, DevServerError, ServerKind, read_since, remove_at_exit

PROSODY_MODULES = Path("/usr/lib/prosody/modules")
PRIVILEGE_MODULE = PROSODY_MODULES / "mod_privilege" / "mod_privilege.lua"
CTL_TIMEOUT = 30.0
EXIT_TIMEOUT = 15.0
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
PORT_FAILURE = "Failed to open server port"

ProsodyStorage = Literal["internal", "sqlite"]

USER_MODULES = (
    "roster",
    "saslauth",
    "disco",
    "carbons",
    "pep",
    "private",
    "blocklist",
    "smacks",
    "ping",
    "version",
    "time",
    "uptime",
    "vcard_legacy",
    "mam",
    "admin_shell",
    "posix",
)


def lua_str(value: str | Path) -> str:
    """Quote ``value`` as a Lua string literal."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def lua_list(values: list[str]) -> str:
    """Render ``values`` as a Lua table of strings."""
    return "{ " + "; ".join(lua_str(value) for value in values) + " }"


@dataclass(kw_only=True)
class ProsodyServer(DevServer):
    """Prosody from Debian's package, run in the foreground as a child of this process."""

    kind: ServerKind = "prosody"
    storage: ProsodyStorage = "internal"
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _socket_dir: Path | None = field(default=None, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)

    # -- paths -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        """The private configuration file."""
        return self.home / "prosody.cfg.lua"

    @property
    def data_dir(self) -> Path:
        """Prosody's data_path (accounts, rosters, archives)."""
        return self.home / "data"

    @property
    def certs_dir(self) -> Path:
        """An empty certificate folder (plaintext only; keeps Prosody from complaining)."""
        return self.home / "certs"

    @property
    def log_path(self) -> Path:
        """Prosody's own log file."""
        return self.home / "prosody.log"

    @property
    def console_path(self) -> Path:
        """Where the process's stdout and stderr go (start-up errors land here)."""
        return self.home / "console.log"

    @property
    def admin_socket(self) -> Path:
        """The admin shell socket (in a short private folder when the run folder is deep)."""
        path = self.home / "prosody.sock"
        if len(str(path)) <= MAX_SOCKET_PATH:
            return path
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="xc-prosody-"))
            remove_at_exit(self._socket_dir)
        return self._socket_dir / "prosody.sock"

    # -- DevServer parts ---------------------------------------------------------------

    def _missing_binaries(self) -> str | None:
        """Prosody needs ``prosody`` and ``prosodyctl`` on PATH."""
        missing = [name for name in ("prosody", "prosodyctl") if shutil.which(name) is None]
        if self.storage == "sqlite" and not _has_lua_dbi_sqlite():
            missing.append("lua-dbi-sqlite3")
        return ", ".join(missing) or None

    def _prepare(self) -> None:
        """Create the data folder and write the configuration."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.certs_dir.mkdir(exist_ok=True)
        self.config_path.write_text(self.render_config(), encoding="utf-8")

    def _launch(self) -> None:
        """Run ``prosody -F`` as a child process, output into the console log."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.console_path.open("ab") as console:
            self._process = subprocess.Popen(
                [_which("prosody"), "--config", str(self.config_path), "-F"],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.home,
            )

    def _death_reason(self) -> str | None:
        """Report an exit during start-up, or a port Prosody could not open (it keeps running)."""
        if self._process is None:
            return "prosody was not launched"
        code = self._process.poll()
        if code is not None:
            return f"prosody exited with status {code}"
        if PORT_FAILURE in read_since(self.log_path, self._log_offset):
            return "prosody could not open a port (see the log)"
        return None

    def _terminate(self) -> None:
        """SIGTERM the child and reap it (SIGKILL when it does not exit in time)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=EXIT_TIMEOUT)

    def _extra_ports(self) -> list[int]:
        """The HTTP port of the upload service."""
        return [self.http_port]

    @property
    def upload_url_base(self) -> str:
        """mod_http_file_share's URLs on the loopback HTTP port."""
        return f"http://{self.host}:{self.http_port}/file_share/"

    @property
    def upload_dir(self) -> Path:
        """Where mod_http_file_share keeps the uploaded files."""
        return self.data_dir / _encode_host(self.upload_jid) / "http_file_share"

    def _log_files(self) -> list[Path]:
        """Prosody's log and the console capture."""
        return [self.log_path, self.console_path]

    # -- accounts ----------------------------------------------------------------------

    def register(self, user: str, password: str) -> str:
        """Create ``user`` (or reset its password) with ``prosodyctl register``."""
        self._ctl("register", user, self.domain, password)
        return self.jid(user)

    def register_many(self, users: dict[str, str]) -> list[str]:
        """Create all accounts in one admin shell session when running (one call)."""
        if not self._running or len(users) < 2:
            return super().register_many(users)
        script = "".join(
            f"user:create({lua_str(self.jid(user))}, {lua_str(password)})\n"
            for user, password in users.items()
        )
        results = self._ctl("shell", stdin=script).split("prosody> user:create(")[1:]
        for (user, password), result in zip(users.items(), results, strict=False):
            if "User created" not in result:
                self.register(user, password)  # exists already: reset its password
        for user, password in list(users.items())[len(results) :]:
            self.register(user, password)
        return [self.jid(user) for user in users]

    def _ctl(self, *args: str, stdin: str | None = None) -> str:
        """Run ``prosodyctl`` with the private configuration; return its output."""
        if not self.config_path.exists():  # accounts may be created before the first start
            self.home.mkdir(parents=True, exist_ok=True)
            self._prepare()
        command = [_which("prosodyctl"), "--config", str(self.config_path), *args]
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CTL_TIMEOUT,
            check=False,
        )
        output = result.stdout + result.stderr
        if result.returncode != 0:
            raise DevServerError(
                f"prosodyctl {args[0]} failed with status {result.returncode}: {output.strip()}"
            )
        return output

    # -- configuration -----------------------------------------------------------------

    def render_config(self) -> str:
        """Return the Prosody configuration for this instance."""
        return "\n".join(
            [
                self._global_section(),
                self._storage_section(),
                self._host_section(),
                self._muc_section(),
                self._upload_section(),
                self._component_section(),
                "",
            ]
        )

    def _modules(self) -> list[str]:
        """Global modules, with mod_privilege when prosody-modules provides it."""
        modules = list(USER_MODULES)
        if PRIVILEGE_MODULE.exists():
            modules.append("privilege")
        return modules

    def _global_section(self) -> str:
        """Process, network and module settings shared by all hosts."""
        log_entry = (
            f'{{ levels = {{ min = "info" }}, to = "file", filename = {lua_str(self.log_path)} }}'
        )
        return f"""-- Private Prosody for tests and demos; generated by xmpp_clinic.dev.servers.
run_as_root = true
daemonize = false
data_path = {lua_str(self.data_dir)}
pidfile = {lua_str(self.home / "prosody.pid")}
certificates = {lua_str(self.certs_dir)}
admin_socket = {lua_str(self.admin_socket)}
log = {{ {log_entry} }}
interfaces = {{ {lua_str(self.host)} }}
local_interfaces = {{ {lua_str(self.host)} }}
c2s_ports = {{ {self.c2s_port} }}
c2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
s2s_ports = {{ }}
s2s_direct_tls_ports = {{ }}
component_ports = {{ {self.component_port} }}
component_interfaces = {{ {lua_str(self.host)} }}
http_ports = {{ {self.http_port} }}
http_interfaces = {{ {lua_str(self.host)} }}
https_ports = {{ }}
https_interfaces = {{ }}
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = false
authentication = "internal_hashed"
c2s_stanza_size_limit = 1048576
component_stanza_size_limit = 1048576
modules_enabled = {lua_list(self._modules())}
modules_disabled = {{ "s2s"; "tls" }}
default_archive_policy = true
{self._expiry_section()}"""

    def _storage_section(self) -> str:
        """Internal file storage, or SQLite (through lua-dbi) for archive benchmarks."""
        if self.storage == "internal":
            return 'storage = "internal"\n'
        return 'storage = "sql"\nsql = { driver = "SQLite3"; database = "prosody.sqlite" }\n'

    def _host_section(self) -> str:
        """The user domain, with XEP-0356 privileges for the gateway component."""
        lines = [f"VirtualHost {lua_str(self.domain)}"]
        if PRIVILEGE_MODULE.exists():
            lines.append(
                f"  privileged_entities = {{ [{lua_str(self.component_jid)}] = "
                '{ roster = "both"; message = "outgoing"; presence = "roster" } }'
            )
        return "\n".join(lines) + "\n"

    def _muc_section(self) -> str:
        """The server's own MUC with room archives; any user may create rooms."""
        return f"""Component {lua_str(self.muc_domain)} "muc"
  modules_enabled = {{ "muc_mam" }}
  restrict_room_creation = false
  muc_log_by_default = true
  muc_log_presences = false
  max_history_messages = 50
"""

    def _expiry_section(self) -> str:
        """The archive expiry (global) as the init snippet sets it (I.7, IV.8)."""
        return f"archive_expires_after = {lua_str(self.expiry.archive_expires_after)}\n"

    def _upload_section(self) -> str:
        """XEP-0363 upload (mod_http_file_share) on the loopback HTTP port.

        The snippet's component with its expiry, plus what loopback needs: URLs name
        the loopback address (``http_host``), not the upload domain no resolver knows.
        """
        return f"""Component {lua_str(self.upload_jid)} "http_file_share"
  http_file_share_expires_after = {self.expiry.upload_seconds}
{self._upload_loopback()}"""

    def _upload_loopback(self) -> str:
        """Lines that put the upload service's URLs on the loopback HTTP port."""
        return f"  http_host = {lua_str(self.host)}\n"

    def _component_section(self) -> str:
        """The gateway's XEP-0114 component."""
        lines = [
            f"Component {lua_str(self.component_jid)}",
            f"  component_secret = {lua_str(self.component_secret)}",
        ]
        if PRIVILEGE_MODULE.exists():
            lines.append('  modules_enabled = { "privilege" }')
        return "\n".join(lines) + "\n"


def _encode_host(host: str) -> str:
    """A host name as Prosody's datamanager names its folder (``.`` as ``%2e``)."""
    return "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in host)


def _which(name: str) -> str:
    """Return the absolute path of ``name`` or raise the install hint."""
    path = shutil.which(name)
    if path is None:
        raise DevServerError(f"{name} not found; run: make deps")
    return path


def _has_lua_dbi_sqlite() -> bool:
    """True when lua-dbi-sqlite3 (Prosody's SQLite driver) is installed."""
    return any(Path("/usr/lib").glob("*/lua/5.*/dbd/sqlite3.so"))
