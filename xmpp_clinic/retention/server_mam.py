"""The server's own MAM copies: purged where the server can, reported where not (I.7, IV.8).

A member's server keeps its own archive of what the member exchanged with a thread's JID
(direct messages to the thread, the gateway's notices). After a membership ends, those
copies go (a request without ``before``); while it lasts, copies older than the thread's cutoff go
(a request with ``before``). An erased person's whole archive goes (a request without a
peer). What a server cannot do is returned as a :class:`ServerPurge` with
``done=False`` and the reason, and lands in the signed receipt: never silently skipped.

- ejabberd 23.01 via mod_http_api: ``remove_mam_for_user_with_peer`` and (a person's
  whole archive) ``remove_mam_for_user``; it has no per-peer
  deletion by time (``delete_old_mam_messages`` is whole days for every user).
- Prosody 0.12 via ``prosodyctl shell`` (the admin socket): the archive store's
  ``find`` and ``delete``, so any storage module works, to the second.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from xmpp_clinic.jids import domain_of
from xmpp_clinic.settings.retention import RetentionSettings

TIMEOUT = 30.0
_RESULT = re.compile(r"\| Result: (-?\d+)")


@dataclass(frozen=True)
class ServerPurge:
    """One thing asked of the server, and whether it was done."""

    server: str
    action: str  # "remove-peer" or "expire-peer"
    user: str
    peer: str
    done: bool
    count: int | None = None  # messages deleted, where the server says
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "server": self.server, "action": self.action, "user": self.user, "peer": self.peer,
            "done": self.done, "count": self.count, "detail": self.detail,
        }  # fmt: skip


@dataclass(frozen=True)
class ServerRequest:
    """Delete ``user``'s server copies exchanged with ``peer`` (all, or up to ``before``);
    ``peer`` empty: every copy the user's archive holds (erasure)."""

    user: str
    peer: str
    before: datetime | None = None

    @property
    def action(self) -> str:
        if not self.peer:
            return "remove-user"
        return "remove-peer" if self.before is None else "expire-peer"

    def outcome(self, server: str, done: bool, count: int | None, detail: str) -> ServerPurge:
        return ServerPurge(server, self.action, self.user, self.peer, done, count, detail)


class ServerArchive(Protocol):
    kind: str
    can_expire: bool  # per-peer deletion by time; else one "not done" line per run

    async def purge(self, requests: list[ServerRequest]) -> list[ServerPurge]: ...


def _local(jid: str) -> str:
    return jid.split("@", 1)[0]


_NOT_CONFIGURED = "retention.server_archive is 'none': the server's MAM copies were not purged"


class NoServerArchive:
    """``retention.server_archive = "none"``: every request is reported as not done."""

    kind = "none"
    can_expire = False

    async def purge(self, requests: list[ServerRequest]) -> list[ServerPurge]:
        return [r.outcome(self.kind, False, None, _NOT_CONFIGURED) for r in requests]


class EjabberdArchive:
    """ejabberd's mod_http_api (``api_permissions`` must allow the commands from here)."""

    kind = "ejabberd"
    can_expire = False
    NO_EXPIRE = (
        "ejabberd 23.01 cannot delete one peer's messages by time; its mod_mam expiry "
        "(delete_old_mam_messages) works in whole days for all users"
    )

    def __init__(self, api_url: str) -> None:
        self._url = api_url.rstrip("/")

    async def purge(self, requests: list[ServerRequest]) -> list[ServerPurge]:
        done: list[ServerPurge] = []
        for r in requests:
            if r.before is not None:
                done.append(r.outcome(self.kind, False, None, self.NO_EXPIRE))
                continue
            body = {"user": _local(r.user), "host": domain_of(r.user)}
            command = "remove_mam_for_user"
            if r.peer:
                body["with"], command = r.peer, "remove_mam_for_user_with_peer"
            ok, detail = await asyncio.to_thread(self._call, command, body)
            done.append(r.outcome(self.kind, ok, None, detail))
        return done

    def _call(self, command: str, body: dict[str, str]) -> tuple[bool, str]:
        request = urllib.request.Request(
            f"{self._url}/{command}", json.dumps(body).encode(),
            {"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                text = response.read().decode("utf-8", "replace")
                return response.status == 200, f"{command}: {text.strip()[:200]}"
        except urllib.error.HTTPError as exc:
            return False, f"{command}: HTTP {exc.code} (api_permissions must allow it)"
        except OSError as exc:
            return False, f"{command}: {type(exc).__name__} ({self._url} unreachable)"


def _lua(text: str) -> str:
    if any(ord(ch) < 32 for ch in text):
        raise ValueError("control characters in a JID")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _prosody_line(r: ServerRequest) -> str:
    """One admin-shell line: find the keys, delete them one by one, return the count.

    Find-then-delete by key is exact with every storage module (mod_storage_internal
    would otherwise treat ``with`` and ``end`` as either-or when deleting).
    """
    fields = [f"with={_lua(r.peer)}"] if r.peer else []
    if r.before is not None:
        fields.append(f'["end"]={int(r.before.timestamp())}')
    query = ", ".join(fields)
    user = _lua(_local(r.user))
    return (
        f'> local s = require"core.storagemanager".open({_lua(domain_of(r.user))}, "archive", '
        f'"archive"); local keys = {{}}; for k in assert(s:find({user}, {{{query}}})) do '
        f"keys[#keys + 1] = k end; for _, k in ipairs(keys) do assert(s:delete({user}, "
        f"{{key=k}})) end; return #keys\n"
    )


class ProsodyArchive:
    """Prosody's archive store through ``prosodyctl shell``: one session for all requests."""

    kind = "prosody"
    can_expire = True

    def __init__(self, prosodyctl: str, config: Path | None) -> None:
        self._command = [prosodyctl] + (["--config", str(config)] if config else [])

    async def purge(self, requests: list[ServerRequest]) -> list[ServerPurge]:
        if not requests:
            return []
        script = "".join(_prosody_line(r) for r in requests)
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command, "shell",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await asyncio.wait_for(process.communicate(script.encode()), TIMEOUT)
        except (OSError, TimeoutError) as exc:
            why = f"prosodyctl shell: {type(exc).__name__}"
            return [r.outcome(self.kind, False, None, why) for r in requests]
        # Each line answers "| Result: N" or "! error"; read the answers in order.
        answers = re.findall(r"prosody> (\| Result: -?\d+|!.*)", output.decode("utf-8", "replace"))
        results: list[ServerPurge] = []
        for n, r in enumerate(requests):
            answer = answers[n] if n < len(answers) else ""
            found = _RESULT.search(answer)
            if found is None:
                why = "prosodyctl shell failed (admin_shell module and socket access needed)"
                results.append(r.outcome(self.kind, False, None, why))
            else:
                results.append(r.outcome(self.kind, True, int(found.group(1)), ""))
        return results


def server_archive(settings: RetentionSettings) -> ServerArchive:
    """The configured server interface (I.7)."""
    if settings.server_archive == "ejabberd":
        if settings.ejabberd_api_url is None:
            return NoServerArchive()
        return EjabberdArchive(settings.ejabberd_api_url)
    if settings.server_archive == "prosody":
        return ProsodyArchive(settings.prosodyctl, settings.prosody_config)
    return NoServerArchive()
