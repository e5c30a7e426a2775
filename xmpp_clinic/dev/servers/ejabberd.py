"""A private ejabberd 23.01 on loopback (Debian's ``ejabberd`` package, run as its own user).

``ejabberdctl`` switches to the ``ejabberd`` user, so every folder the server uses must be
reachable by that user. When the run folder is not (pytest's ``/tmp/pytest-of-root`` is
mode 0700), the server's files live in a private folder under the temporary directory and
``<run_dir>/ejabberd`` is a symbolic link to it; that folder is deleted when the process
exits (set ``XMPP_CLINIC_KEEP_RUN=1`` to keep it for a post-mortem).

This module runs the server (start, stop, accounts over mod_http_api, ejabberdctl);
:mod:`.ejabberd_config` renders its configuration files.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import pwd
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ejabberd_config, unix
from .base import DevServer, DevServerError, ServerKind, read_since, remove_at_exit
from .ejabberd_config import EjabberdNode, EjabberdSite
from .ports import free_port, wait_until
from .yamlgen import YamlValue

EJABBERD_USER = "ejabberd"
SYSTEM_INETRC = Path("/etc/ejabberd/inetrc")
SQLITE_DRIVER_GLOB = "p1_sqlite3-*"
ERLANG_LIB = Path("/usr/lib/erlang/lib")
CTL_TIMEOUT = 60.0
EXIT_TIMEOUT = 20.0
HTTP_TIMEOUT = 15.0
READY_PROBE_TIMEOUT = 1.0
START_FAILURES = ("Failed to start ejabberd application", "exited: {bad_return")


@dataclass(kw_only=True)
class EjabberdServer(DevServer):
    """ejabberd started with ``ejabberdctl start`` from a private config folder.

    The Erlang node name, cookie and distribution port are fixed per instance: Mnesia's
    data belongs to the node name, so :meth:`restart` keeps them.
    """

    kind: ServerKind = "ejabberd"
    node_name: str = field(default_factory=lambda: f"xc{secrets.token_hex(6)}@localhost")
    cookie: str = field(default_factory=lambda: secrets.token_hex(16), repr=False)
    dist_port: int = field(default_factory=free_port)
    extra_api_commands: tuple[str, ...] = ()
    _home: Path | None = field(default=None, init=False, repr=False)
    _log_offset: int = field(default=0, init=False, repr=False)

    # -- paths -------------------------------------------------------------------------

    @property
    def home(self) -> Path:
        """ejabberd's folder: ``<run_dir>/ejabberd`` or a private folder it links to."""
        if self._home is None:
            self._home = self._choose_home()
        return self._home

    @property
    def etc_dir(self) -> Path:
        """The private ``--config-dir`` (ejabberdctl.cfg, ejabberd.yml, inetrc)."""
        return self.home / "etc"

    @property
    def spool_dir(self) -> Path:
        """Mnesia and the SQLite database."""
        return self.home / "spool"

    @property
    def logs_dir(self) -> Path:
        """ejabberd's log folder."""
        return self.home / "logs"

    @property
    def log_path(self) -> Path:
        """ejabberd's main log file."""
        return self.logs_dir / "ejabberd.log"

    @property
    def pid_path(self) -> Path:
        """The pid file ejabberd writes once its VM runs."""
        return self.home / "run" / "ejabberd.pid"

    @property
    def ebin_dir(self) -> Path:
        """Extra compiled modules (on the code path through ``-pa``)."""
        return self.home / "ebin"

    @property
    def upload_url_base(self) -> str:
        """mod_http_upload's URLs on the loopback HTTP listener."""
        return f"http://{self.host}:{self.http_port}{ejabberd_config.UPLOAD_PATH}/"

    @property
    def upload_dir(self) -> Path:
        """mod_http_upload's docroot: the uploaded files."""
        return self.spool_dir / "upload"

    @property
    def sqlite_path(self) -> Path:
        """The SQLite database holding MAM archives (users' and rooms')."""
        return self.spool_dir / "ejabberd.db"

    def _choose_home(self) -> Path:
        """Use ``<run_dir>/ejabberd`` when the ejabberd user can reach it, else link away."""
        link = self.run_dir / self.kind
        if link.is_symlink():
            return link.resolve()
        if link.exists() or unix.reachable_by(EJABBERD_USER, self.run_dir):
            return link
        self.run_dir.mkdir(parents=True, exist_ok=True)
        private = Path(tempfile.mkdtemp(prefix="xc-ejabberd-"))
        link.symlink_to(private, target_is_directory=True)
        remove_at_exit(private)
        return private

    # -- DevServer parts ---------------------------------------------------------------

    def _missing_binaries(self) -> str | None:
        """ejabberd needs ejabberdctl, the ejabberd user, the SQLite driver and root."""
        missing = []
        if _ejabberdctl() is None:
            missing.append("ejabberdctl")
        if not unix.user_exists(EJABBERD_USER):
            missing.append("user ejabberd")
        if not any(ERLANG_LIB.glob(SQLITE_DRIVER_GLOB)):
            missing.append("erlang-p1-sqlite3")
        if missing:
            return ", ".join(missing)
        if os.geteuid() != 0:
            raise DevServerError("the ejabberd dev server must run as root (ejabberdctl su)")
        return None

    def _prepare(self) -> None:
        """Create the folders, write the configuration and hand the folders to ejabberd."""
        for folder in (self.etc_dir, self.spool_dir, self.logs_dir, self.pid_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        self.ebin_dir.mkdir(exist_ok=True)
        self.pid_path.unlink(missing_ok=True)
        (self.etc_dir / "ejabberdctl.cfg").write_text(self.render_ctl_config(), encoding="utf-8")
        (self.etc_dir / "ejabberd.yml").write_text(self.render_config(), encoding="utf-8")
        shutil.copyfile(SYSTEM_INETRC, self.etc_dir / "inetrc")
        self._fix_ownership()

    def _fix_ownership(self) -> None:
        """Let the ejabberd user write spool/logs/run and read (only) the config folder."""
        user = pwd.getpwnam(EJABBERD_USER)
        self.home.chmod(0o755)
        for folder in (self.spool_dir, self.logs_dir, self.pid_path.parent, self.ebin_dir):
            unix.chown_tree(folder, user.pw_uid, user.pw_gid)
        self.etc_dir.chmod(0o750)
        os.chown(self.etc_dir, -1, user.pw_gid)
        for path in self.etc_dir.iterdir():
            os.chown(path, -1, user.pw_gid)
            path.chmod(0o640)

    def _launch(self) -> None:
        """Run ``ejabberdctl start`` (it returns at once; the VM runs detached)."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        result = self._ctl_run("start")
        if result.returncode != 0:
            raise DevServerError(
                f"ejabberdctl start failed with status {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()}\n{self.log_tail()}"
            )

    def _is_ready(self) -> bool:
        """Ports open *and* mod_http_api answers.

        ejabberd binds its listening sockets early and only starts accepting once Mnesia and
        the modules are up, so an open port alone does not mean ready (and a SIGTERM in that
        window can crash Mnesia and stall the VM's exit for 13 s).
        """
        if not super()._is_ready():
            return False
        try:
            status, _reply = self.api_call("status", {}, timeout=READY_PROBE_TIMEOUT)
        except (OSError, http.client.HTTPException):
            return False
        return status == 200

    def _death_reason(self) -> str | None:
        """Report a VM that went away, or an ejabberd application that failed to start.

        When the application fails late (e.g. its spool vanished) the Erlang VM stays up
        without ejabberd, so the log is checked as well as the process.
        """
        pid = self._pid()
        if pid is not None and not unix.alive(pid):
            return f"the ejabberd VM (pid {pid}) exited"
        log = read_since(self.log_path, self._log_offset)
        if any(marker in log for marker in START_FAILURES):
            return "the ejabberd application failed to start (see the log)"
        return None

    def _terminate(self) -> None:
        """SIGTERM the VM by its pid (a clean ``init:stop``) and wait for it to exit."""
        pid = self._pid()
        if pid is None or not unix.alive(pid):
            return
        os.kill(pid, signal.SIGTERM)
        if wait_until(lambda: not unix.alive(pid), EXIT_TIMEOUT) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            wait_until(lambda: not unix.alive(pid), EXIT_TIMEOUT)

    def _pid(self) -> int | None:
        """The VM's pid: from the pid file, else found by our unique node name in /proc."""
        try:
            pid = int(self.pid_path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return unix.find_node(self.node_name)
        if unix.runs_node(pid, self.node_name) or not unix.alive(pid):
            return pid
        return unix.find_node(self.node_name)

    def _extra_ports(self) -> list[int]:
        """The HTTP listener: mod_http_api and the upload service."""
        return [self.http_port]

    def _log_files(self) -> list[Path]:
        """ejabberd's logs, plus the output of ``ejabberdctl start``."""
        others = [self.logs_dir / name for name in ("error.log", "crash.log")]
        return [self.log_path, *others, self.home / "ctl.log"]

    # -- accounts ----------------------------------------------------------------------

    def register(self, user: str, password: str) -> str:
        """Create ``user`` (or reset its password) through mod_http_api."""
        return self.register_many({user: password})[0]

    def register_many(self, users: dict[str, str]) -> list[str]:
        """Create all accounts over one keep-alive HTTP connection (about 5 ms each)."""
        self._require_running()
        connection = http.client.HTTPConnection(self.host, self.http_port, timeout=HTTP_TIMEOUT)
        try:
            for user, password in users.items():
                self._register_one(connection, user, password)
        finally:
            connection.close()
        return [self.jid(user) for user in users]

    def _register_one(self, connection: http.client.HTTPConnection, user: str, pw: str) -> None:
        """Register one account; an existing one gets the new password instead."""
        body = {"user": user, "host": self.domain, "password": pw}
        status, reply = self.api_call("register", body, connection=connection)
        if status == 200:
            return
        if "already registered" in str(reply):
            body = {"user": user, "host": self.domain, "newpass": pw}
            status, reply = self.api_call("change_password", body, connection=connection)
            if status == 200:
                return
        raise DevServerError(f"ejabberd could not register {user}: HTTP {status} {reply}")

    def api_call(
        self,
        command: str,
        body: dict[str, Any],
        *,
        connection: http.client.HTTPConnection | None = None,
        timeout: float = HTTP_TIMEOUT,
    ) -> tuple[int, Any]:
        """POST ``body`` to mod_http_api's ``command``; return the status and decoded JSON."""
        own = connection is None
        conn = connection or http.client.HTTPConnection(self.host, self.http_port, timeout=timeout)
        try:
            payload = json.dumps(body).encode()
            headers = {"Content-Type": "application/json"}
            conn.request("POST", f"/api/{command}", body=payload, headers=headers)
            response = conn.getresponse()
            raw = response.read().decode("utf-8", errors="replace")
        finally:
            if own:
                conn.close()
        try:
            return response.status, json.loads(raw)
        except json.JSONDecodeError:
            return response.status, raw

    def ctl(self, *args: str) -> str:
        """Run an ``ejabberdctl`` command against this node (about 0.5 s); return its output."""
        result = self._ctl_run(*args)
        output = (result.stdout + result.stderr).strip()
        if result.returncode != 0:
            raise DevServerError(f"ejabberdctl {args[0]} failed ({result.returncode}): {output}")
        return output

    def rpc(self, module: str, function: str, args: str = "[]") -> str:
        """Call ``module:function`` inside the running node; return the result as text.

        ``args`` is an Erlang list, as source text. For tests that must make a timer's
        work happen now (23.01 has no eval command): the call goes through
        ``ejabberdctl debug``, a hidden node that ``rpc:call``s this one (about 1 s).
        """
        self._require_running()
        marker = "RPC-RESULT"
        call = f"rpc:call('{self.node_name}', {module}, {function}, {args})"
        result = self._ctl_run("debug", stdin=f'io:format("{marker} ~w~n", [{call}]).\n')
        found = re.search(rf"{marker} (.*)$", result.stdout, re.MULTILINE)
        if found is None:
            output = (result.stdout + result.stderr).strip()
            raise DevServerError(f"{module}:{function} could not be called: {output}")
        return found[1]

    def _ctl_run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ejabberdctl with the private folders; log its output to ``ctl.log``."""
        ctl = _ejabberdctl()
        if ctl is None:
            raise DevServerError("ejabberdctl not found; run: make deps")
        command = [ctl, "--config-dir", str(self.etc_dir), "--spool", str(self.spool_dir)]
        command += ["--logs", str(self.logs_dir), *args]
        result = subprocess.run(
            command,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CTL_TIMEOUT,
            check=False,
        )
        with (self.home / "ctl.log").open("a", encoding="utf-8") as log:
            log.write(f"$ ejabberdctl {shlex.join(args)} -> {result.returncode}\n")
            log.write(result.stdout + result.stderr)
        return result

    # -- configuration (rendered by .ejabberd_config) ----------------------------------

    def node(self) -> EjabberdNode:
        """This instance's Erlang node, as ``ejabberdctl.cfg`` declares it."""
        return EjabberdNode(
            node_name=self.node_name,
            cookie=self.cookie,
            dist_port=self.dist_port,
            ebin_dir=self.ebin_dir,
            pid_path=self.pid_path,
        )

    def site(self) -> EjabberdSite:
        """What this instance's ``ejabberd.yml`` serves: domains, ports, the gateway."""
        return EjabberdSite(
            domain=self.domain,
            muc_domain=self.muc_domain,
            component_jid=self.component_jid,
            component_secret=self.component_secret,
            host=self.host,
            c2s_port=self.c2s_port,
            component_port=self.component_port,
            http_port=self.http_port,
            sqlite_path=self.sqlite_path,
            upload_jid=self.upload_jid,
            upload_dir=self.upload_dir,
            upload_max_days=self.expiry.days,
            extra_api_commands=self.extra_api_commands,
        )

    def render_ctl_config(self) -> str:
        """Return ``ejabberdctl.cfg``: node name, epmd-less distribution, cookie, pid file."""
        return ejabberd_config.render_ctl_config(self.node())

    def render_config(self) -> str:
        """Return ``ejabberd.yml`` for this instance."""
        return ejabberd_config.render_config(self.config())

    def config(self) -> dict[str, YamlValue]:
        """The ejabberd configuration as data (tests may tweak it before start)."""
        return ejabberd_config.site_config(self.site())


def _ejabberdctl() -> str | None:
    """The ejabberdctl script (in /usr/sbin, which may be missing from PATH)."""
    return shutil.which("ejabberdctl") or shutil.which("ejabberdctl", path="/usr/sbin:/sbin")
