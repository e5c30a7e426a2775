"""Writing rosters through ejabberd's mod_http_api, where XEP-0356 roster sets fail (I.3).

ejabberd 23.01 grants a component roster access but fails every roster set it sends
(see xmpp/roster_sync.py). Its mod_admin_extra commands ``get_roster``,
``add_rosteritem`` and ``delete_rosteritem`` do the same job and push the change to the
person's online clients; ``api_permissions`` must allow them from the gateway's host
(``directory.ejabberd_api_url``). The HTTP calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

from xmpp_clinic.directory.model import DirectoryError
from xmpp_clinic.directory.roster import RosterItem

TIMEOUT = 15.0
COMMANDS = ("get_roster", "add_rosteritem", "delete_rosteritem")


class RosterApiError(DirectoryError):
    """The API refused or could not be reached; ``str()`` names the command, not the data."""


def _split(jid: str) -> tuple[str, str]:
    local, _, domain = jid.partition("@")
    return (local, domain) if domain else ("", jid)


class EjabberdRosterApi:
    """Reads and writes one person's roster by ejabberd's HTTP API."""

    def __init__(self, api_url: str) -> None:
        self._url = api_url.rstrip("/")

    async def fetch(self, jid: str) -> dict[str, RosterItem]:
        user, host = _split(jid)
        rows = await asyncio.to_thread(self._call, "get_roster", {"user": user, "host": host})
        items: dict[str, RosterItem] = {}
        for row in rows if isinstance(rows, list) else []:
            peer = str(row.get("jid", ""))
            have = items.get(peer)
            groups = {str(row.get("group", ""))} - {""}
            merged = (have.groups if have else frozenset()) | groups
            items[peer] = RosterItem(peer, str(row.get("nick", "")), frozenset(merged))
        return items

    async def write(self, jid: str, item: RosterItem) -> None:
        user, host = _split(jid)
        peer_user, peer_host = _split(item.jid)
        where = {"localuser": user, "localhost": host, "user": peer_user, "host": peer_host}
        if item.remove:
            await asyncio.to_thread(self._call, "delete_rosteritem", where)
            return
        body = {**where, "nick": item.name, "group": ";".join(sorted(item.groups)), "subs": "none"}
        await asyncio.to_thread(self._call, "add_rosteritem", body)

    def _call(self, command: str, body: dict[str, str]) -> Any:
        request = urllib.request.Request(
            f"{self._url}/{command}",
            json.dumps(body).encode(),
            {"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.loads(response.read().decode("utf-8", "replace") or "null")
        except urllib.error.HTTPError as exc:
            raise RosterApiError(
                f"{command}: HTTP {exc.code} (api_permissions must allow it from this host)"
            ) from None
        except (OSError, ValueError) as exc:
            raise RosterApiError(f"{command}: {type(exc).__name__} ({self._url})") from None
