"""Drive the Profanity terminal client (Debian's ``profanity``) under a private tmux server.

Profanity is a stock OMEMO client (legacy OMEMO, libsignal-protocol-c) with a text user
interface and no scripting interface a test could use instead, so it is driven as a
person would: keystrokes go in with ``tmux send-keys``, and what the person would see
comes out with ``tmux capture-pane``. Everything stays private to one instance:

- its own HOME and XDG folders (accounts, OMEMO keys, chat logs, ``profrc``) under
  ``root``, so nothing of the machine's user is read or written;
- its own tmux server on a socket named per instance (``tmux -L <name>``), with no user
  configuration, a fixed window size and no status line; :meth:`Profanity.stop` ends
  that server only;
- its own debug log (``-l DEBUG -f``): libstrophe writes every stanza sent and received
  there, which is the client side of a stanza capture.

Every wait is bounded and polls; a timeout raises :class:`ScreenTimeout` with the screen
and the tail of Profanity's log, which is what one needs to see why.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

WIDTH = 240  # the room window keeps 85 %: a refusal's text fits on one line
HEIGHT = 60
POLL_SECONDS = 0.1
DEFAULT_TIMEOUT = 20.0
TMUX_TIMEOUT = 10.0
INSTALL_HINT = "apt-get install profanity tmux (make deps)"

# Settings that keep the screen quiet and predictable (no typing notifications, desktop
# notifications, bells or pings) and reconnect at once after a dropped link.
QUIET_SETTINGS = (
    "/states off",
    "/outtype off",
    "/intype off",
    "/notify chat off",
    "/notify room off",
    "/beep off",
    "/flash off",
    "/splash off",
    "/autoping set 0",
    "/reconnect 1",  # after a dropped link, log in again after one second
)


class ProfanityError(RuntimeError):
    """Profanity or tmux could not be started, driven or stopped."""


class ScreenTimeout(ProfanityError):
    """What was waited for did not appear on the screen (or in the log) in time.

    Not an AssertionError: a step that waits for a defect's fix asserts its expectation
    with ``assert``; a wait that times out is a broken run, never the expected failure."""


# tmux servers started and not yet stopped, by socket name: ended at exit whatever
# happened to the test (a set-up that failed half way never reaches its stop()).
_live_servers: dict[str, Path] = {}


def _forget_server(name: str) -> None:
    """Drop a stopped server's socket file (tmux may leave it behind)."""
    path = _live_servers.pop(name, None)
    if path is not None:
        with contextlib.suppress(OSError):
            path.unlink()


@atexit.register
def _end_live_servers() -> None:
    for name in list(_live_servers):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["tmux", "-L", name, "kill-server"], capture_output=True, timeout=TMUX_TIMEOUT
            )
        _forget_server(name)


def missing_binaries() -> str | None:
    """Names of the missing programs, or None when Profanity and tmux are installed."""
    missing = [name for name in ("profanity", "tmux") if shutil.which(name) is None]
    return ", ".join(missing) or None


def _terminal() -> str:
    """A TERM whose terminfo entry exists here (Debian's ncurses-base has both)."""
    for folder in ("/lib/terminfo/t", "/usr/share/terminfo/t"):
        if Path(folder, "tmux-256color").exists():
            return "tmux-256color"
    return "screen"


@dataclass
class Account:
    """A Profanity account for a loopback server without TLS."""

    name: str
    jid: str
    password: str  # no spaces: Profanity splits command arguments on spaces
    host: str
    port: int


@dataclass
class Profanity:
    """One Profanity process in one private tmux server; async so a gateway running in
    the same event loop keeps working while the test waits for the screen."""

    root: Path
    width: int = WIDTH
    height: int = HEIGHT
    socket: str = field(default_factory=lambda: f"xc-profanity-{uuid.uuid4().hex[:10]}")
    session: str = "profanity"
    _started: bool = field(default=False, init=False)

    # ------------------------------------------------------------------ paths
    @property
    def log_path(self) -> Path:
        """Profanity's debug log (every stanza in and out, written by libstrophe)."""
        return self.root / "profanity.log"

    @property
    def data_dir(self) -> Path:
        """XDG_DATA_HOME/profanity: accounts, OMEMO keys, chat logs."""
        return self.root / "data" / "profanity"

    def _environment(self) -> list[str]:
        home = self.root / "home"
        folders = {
            "HOME": home,
            "XDG_CONFIG_HOME": self.root / "config",
            "XDG_DATA_HOME": self.root / "data",
            "XDG_CACHE_HOME": self.root / "cache",
            "XDG_RUNTIME_DIR": self.root / "runtime",
        }
        for path in folders.values():
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        settings = [f"{name}={path}" for name, path in folders.items()]
        return [*settings, f"TERM={_terminal()}", "LANG=C.UTF-8", "PATH=/usr/bin:/bin"]

    # -------------------------------------------------------------- life cycle
    async def start(self) -> None:
        """Start tmux and Profanity in it; returns once Profanity's screen is up."""
        missing = missing_binaries()
        if missing:
            raise ProfanityError(f"{missing} not installed: {INSTALL_HINT}")
        self.root.mkdir(parents=True, exist_ok=True)
        conf = self.root / "tmux.conf"
        # remain-on-exit keeps the last screen of a Profanity that died, for the report.
        conf.write_text("set -g status off\nset -g remain-on-exit on\n", encoding="utf-8")
        command = [
            "env", "-i", *self._environment(),
            shutil.which("profanity") or "profanity", "-l", "DEBUG", "-f", str(self.log_path),
        ]  # fmt: skip
        await self._tmux(
            "-f", str(conf), "new-session", "-d", "-s", self.session,
            "-x", str(self.width), "-y", str(self.height), *command,
        )  # fmt: skip
        self._started = True
        socket = await self._tmux("display-message", "-p", "#{socket_path}")
        _live_servers[self.socket] = Path(socket.strip())
        await self.wait_for("Type '/help' to show complete help", timeout=15)

    async def stop(self) -> None:
        """Quit Profanity (``/quit``, so it closes its stream) and end this tmux server."""
        if not self._started:
            return
        with contextlib.suppress(ProfanityError):
            if await self.running():
                await self.command("/quit")
                deadline = time.monotonic() + 5
                while await self.running() and time.monotonic() < deadline:
                    await asyncio.sleep(POLL_SECONDS)
        with contextlib.suppress(ProfanityError):
            await self._tmux("kill-server")
        _forget_server(self.socket)
        self._started = False

    async def running(self) -> bool:
        """True while the Profanity process in the pane is alive."""
        dead = await self._tmux("display-message", "-p", "-t", self.session, "#{pane_dead}")
        return dead.strip() == "0"

    # ------------------------------------------------------------------ input
    async def type(self, text: str) -> None:
        """Type ``text`` literally into the input line (no Enter)."""
        await self._tmux("send-keys", "-t", self.session, "-l", text)

    async def command(self, line: str) -> None:
        """Type ``line`` and press Enter (a /command or a message to the current window)."""
        await self.type(line)
        await self._tmux("send-keys", "-t", self.session, "Enter")

    async def commands(self, *lines: str) -> None:
        """Several lines, each entered on its own."""
        for line in lines:
            await self.command(line)

    async def window(self, name: str) -> None:
        """Switch to a window: a number, ``console`` or a room/contact JID."""
        await self.command(f"/win {name}")

    # ------------------------------------------------------- what a person does
    async def add_account(self, account: Account) -> None:
        """``/account add`` and ``/account set``: a plaintext loopback server, no TLS."""
        name = account.name
        await self.commands(
            f"/account add {name}",
            f"/account set {name} jid {account.jid}",
            f"/account set {name} server {account.host}",
            f"/account set {name} port {account.port}",
            f"/account set {name} tls disable",
            f"/account set {name} password {account.password}",
        )
        await self.wait_for(f"Updated password for account {name}")

    async def connect(self, account: Account, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """``/connect``; returns once Profanity reports the login."""
        await self.command(f"/connect {account.name}")
        await self.wait_for(
            re.compile(rf"{re.escape(account.jid)}/\S+ logged in successfully"), timeout=timeout
        )

    async def omemo_setup(self, *, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Trust every key blindly, encrypt by default, generate keys: the device id."""
        await self.commands("/omemo trustmode blind", "/omemo policy automatic", "/omemo gen")
        found = await self.wait_for(re.compile(r"Your Device ID is (\d+)"), timeout=timeout)
        return int(found.group(1))

    # ----------------------------------------------------------------- output
    async def screen(self) -> str:
        """What is on the screen now (wrapped lines joined)."""
        return await self._tmux("capture-pane", "-p", "-J", "-t", self.session)

    async def wait_for(
        self, pattern: str | re.Pattern[str], *, timeout: float = DEFAULT_TIMEOUT
    ) -> re.Match[str]:
        """Wait until ``pattern`` (literal text or a compiled regex) is on the screen."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        screen = ""
        while True:
            screen = await self.screen()
            found = regex.search(screen)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                raise ScreenTimeout(
                    f"{regex.pattern!r} did not appear on Profanity's screen in {timeout:.0f} s."
                    f"\n--- screen ---\n{screen.rstrip()}\n--- log tail ---\n{self.log_tail()}"
                )
            await asyncio.sleep(POLL_SECONDS)

    async def wait_gone(self, text: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until ``text`` is no longer on the screen."""
        deadline = time.monotonic() + timeout
        while text in await self.screen():
            if time.monotonic() > deadline:
                raise ScreenTimeout(f"{text!r} still on Profanity's screen after {timeout:.0f} s")
            await asyncio.sleep(POLL_SECONDS)

    # -------------------------------------------------------------------- log
    def log_text(self) -> str:
        """Profanity's whole debug log so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        return "\n".join(line[:400] for line in self.log_text().splitlines()[-lines:])

    def log_size(self) -> int:
        """A mark in the log: pass it as ``after`` to look only at what comes next."""
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    async def wait_for_log(
        self, pattern: str | re.Pattern[str], *, after: int = 0, timeout: float = DEFAULT_TIMEOUT
    ) -> re.Match[str]:
        """Wait until ``pattern`` appears in the debug log after byte ``after``."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), self.log_path.open("rb") as handle:
                handle.seek(after)
                found = regex.search(handle.read().decode("utf-8", errors="replace"))
                if found is not None:
                    return found
            if time.monotonic() > deadline:
                raise ScreenTimeout(
                    f"{regex.pattern!r} did not appear in Profanity's log in {timeout:.0f} s."
                    f"\n--- screen ---\n{(await self.screen()).rstrip()}"
                    f"\n--- log tail ---\n{self.log_tail()}"
                )
            await asyncio.sleep(POLL_SECONDS)

    def stanzas(
        self,
        direction: str,
        tag: str,
        *,
        after: int = 0,
        where: dict[str, str] | None = None,
        contains: str = "",
    ) -> list[str]:
        """``<tag>`` stanzas Profanity sent (``"SENT"``) or received (``"RECV"``) after byte
        ``after`` of its log, whose attributes match the regexes in ``where`` and whose
        text contains ``contains``."""
        marker = f": {direction}: <{tag} "
        tests = [
            re.compile(rf"""\s{name}=["']{value}["']""") for name, value in (where or {}).items()
        ]
        out = []
        with contextlib.suppress(OSError), self.log_path.open("rb") as handle:
            handle.seek(after)
            for line in handle.read().decode("utf-8", errors="replace").splitlines():
                _head, sep, rest = line.partition(marker)
                if not sep:
                    continue
                stanza = f"<{tag} {rest}"
                start = stanza.split(">", 1)[0]
                if contains in stanza and all(test.search(start) for test in tests):
                    out.append(stanza)
        return out

    async def wait_for_stanza(
        self,
        direction: str,
        tag: str,
        *,
        after: int,
        where: dict[str, str] | None = None,
        contains: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> str:
        """Wait for the first stanza :meth:`stanzas` would list; return its XML."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.stanzas(direction, tag, after=after, where=where, contains=contains)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise ScreenTimeout(
                    f"no <{tag}> {direction} with {where} {contains!r} in Profanity's log "
                    f"in {timeout:.0f} s."
                    f"\n--- screen ---\n{(await self.screen()).rstrip()}"
                    f"\n--- log tail ---\n{self.log_tail()}"
                )
            await asyncio.sleep(POLL_SECONDS)

    # ------------------------------------------------------------------ tmux
    async def _tmux(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "tmux", "-L", self.socket, *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "TMUX": ""},
        )  # fmt: skip
        try:
            out, err = await asyncio.wait_for(process.communicate(), TMUX_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ProfanityError(f"tmux {args[0]} did not answer in {TMUX_TIMEOUT:.0f} s") from None
        if process.returncode != 0:
            raise ProfanityError(f"tmux {args[0]} failed: {err.decode(errors='replace').strip()}")
        return out.decode("utf-8", errors="replace")
