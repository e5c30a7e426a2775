"""The server's own copies expire with the gateway's retention, as the init snippets set it.

I.7 (delete after a deadline) and IV.8 (regular deletion at the provider): Prosody and
ejabberd keep their own MAM archive and uploaded files. ``xmpp-clinic init`` writes
snippets that set each server's expiry from ``retention.messages_days``; here both
servers run with exactly those settings (the snippet's lines, plus only what loopback
needs), and the expiry is made to happen now instead of in days:

- Prosody: its daily cron tasks (mod_mam's and mod_http_file_share's) are marked as
  last run long ago and the server restarted, so they run a second after start; one
  message and one file were backdated to an age between the snippet's period and
  Prosody's own defaults (archive one week, uploads one week), so only the snippet's
  value deletes them.
- ejabberd: 23.01 has no MAM expiry option; the snippet's cron line (and the systemd
  unit in deploy/) runs ``delete_old_mam_messages all DAYS``; the test runs that command
  after backdating one archived message. Its upload expiry (``mod_http_upload_quota``
  ``max_days``) sweeps 0 to 12 hours after start and then daily: the running server's
  configuration holds the snippet's value, and the sweep its timer would send is sent
  now, after one file was made older than the period (and younger than one week).

The user then queries MAM as a client would, and fetches the files over HTTP.
"""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from slixmpp import ClientXMPP
from slixmpp.exceptions import IqError

from tests.helpers.bots import connect_bot, disconnect_bot
from tests.integration.test_confine import init_snippets
from xmpp_clinic.dev.servers import DevServer, EjabberdServer, ProsodyServer
from xmpp_clinic.dev.servers.ejabberd_config import YamlValue
from xmpp_clinic.dev.servers.ports import wait_until
from xmpp_clinic.dev.servers.upload import UploadSlot, request_slot
from xmpp_clinic.dev.thread_client import fetch_history
from xmpp_clinic.templates import block

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(240),
    pytest.mark.requirement("I.7", "IV.8"),
]

REPO = Path(__file__).resolve().parents[2]
MAM_UNIT = REPO / "deploy" / "ejabberd-mam-expiry@.service"
DAYS = 2  # retention.messages_days of the config under test
AGE = 3 * 86400  # older than DAYS, younger than either server's default (one week)
PASSWORD = "expiry-pw"
PLUGINS = ("xep_0030", "xep_0313")
PRUNE_TIMEOUT = 30.0


@pytest.fixture(scope="module")
def snippets(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """(Prosody, ejabberd) snippets of a config keeping messages ``DAYS`` days."""
    return init_snippets(tmp_path_factory.mktemp("init"), messages_days=DAYS)


def active(text: str, comment: str) -> list[str]:
    """The lines of a snippet an operator installs as they are (not comments)."""
    return [line for line in text.splitlines() if line.strip() and not line.startswith(comment)]


def test_rendered_snippets_carry_the_retention(snippets: tuple[str, str]) -> None:
    prosody, ejabberd = snippets
    assert f'archive_expires_after = "{DAYS}d"' in active(prosody, "--")
    assert f"  http_file_share_expires_after = {DAYS * 86400}" in active(prosody, "--")
    upload = block(ejabberd, "clinic-upload", "#")
    assert f"    max_days: {DAYS}\n" in upload and "  mod_http_upload_quota:\n" in upload
    assert mam_command(ejabberd) == ["delete_old_mam_messages", "all", str(DAYS)]
    assert f"ejabberd-mam-expiry@{DAYS}.timer" in ejabberd


def mam_command(ejabberd_snippet: str) -> list[str]:
    """The ejabberdctl arguments of the snippet's cron line, checked against the systemd
    unit in deploy/ (the other way the snippet offers), instantiated for the same days."""
    cron = re.search(
        r"^#\s+\S+ \S+ \* \* \* root /usr/sbin/ejabberdctl (.+)$", ejabberd_snippet, re.M
    )
    assert cron is not None, "the ejabberd snippet has no cron line"
    args = cron[1].split()
    days = re.search(r"ejabberd-mam-expiry@(\d+)\.timer", ejabberd_snippet)
    assert days is not None
    unit = re.search(r"^ExecStart=/usr/sbin/ejabberdctl (.+)$", MAM_UNIT.read_text(), re.M)
    assert unit is not None
    assert unit[1].replace("%i", days[1]).split() == args
    return args


# -- servers as the snippets configure them ----------------------------------------------


@dataclass(kw_only=True)
class SnippetProsody(ProsodyServer):
    """Prosody with the snippet's archive expiry and upload component, as installed."""

    snippet: str = ""

    def _expiry_section(self) -> str:
        lines = [line for line in active(self.snippet, "--") if "expires_after" in line]
        return "".join(line + "\n" for line in lines if not line.startswith(" "))

    def _upload_section(self) -> str:
        return block(self.snippet, "clinic-upload", "--") + self._upload_loopback()


@dataclass(kw_only=True)
class SnippetEjabberd(EjabberdServer):
    """ejabberd with the snippet's upload modules; only URLs and folder are loopback's."""

    snippet: str = ""

    def config(self) -> dict[str, YamlValue]:
        config = super().config()
        upload = block(self.snippet, "clinic-upload", "#")
        hosts = re.search(r"^    hosts: \[([^\]]+)\]$", upload, re.M)
        max_days = re.search(r"^    max_days: (\d+)$", upload, re.M)
        assert hosts is not None and max_days is not None, upload
        modules: Any = config["modules"]
        modules["mod_http_upload"]["hosts"] = [h.strip() for h in hosts[1].split(",")]
        modules["mod_http_upload_quota"] = {"max_days": int(max_days[1])}
        return config


@pytest.fixture(params=("prosody", "ejabberd"))
def server(
    request: pytest.FixtureRequest,
    snippets: tuple[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DevServer]:
    run_dir = tmp_path_factory.mktemp(f"expiry-{request.param}")
    dev: DevServer
    if request.param == "prosody":
        dev = SnippetProsody(run_dir=run_dir, snippet=snippets[0])
    else:
        dev = SnippetEjabberd(run_dir=run_dir, snippet=snippets[1])
    dev.start()
    try:
        yield dev
    finally:
        dev.stop()


# -- helpers -----------------------------------------------------------------------------


async def upload(bot: ClientXMPP, server: DevServer, name: str, data: bytes) -> UploadSlot:
    slot = await request_slot(bot, server.upload_jid, name, len(data), "text/plain")
    async with httpx.AsyncClient(timeout=15) as http:
        put = await http.put(slot.put_url, content=data, headers=slot.headers)
    assert put.status_code in (200, 201), put.text
    return slot


async def fetch(url: str) -> tuple[int, bytes]:
    async with httpx.AsyncClient(timeout=15) as http:
        got = await http.get(url)
    return got.status_code, got.content


async def archived_bodies(bot: ClientXMPP) -> list[str]:
    """What the user's own MAM returns, as a client catching up sees it."""
    return [str(m["body"]) for m in await fetch_history(bot, bot.boundjid.bare)]


async def exchange(server: DevServer) -> tuple[str, str]:
    """bob sends alice an old and a fresh message; both land in alice's archive."""
    alice, bob = server.register_many({"alice": PASSWORD, "bob": PASSWORD})
    a = await connect_bot(alice, PASSWORD, server, plugins=PLUGINS)
    b = await connect_bot(bob, PASSWORD, server, plugins=PLUGINS)
    try:
        for body in ("old news", "fresh news"):
            b.send_message(mto=alice, mbody=body, mtype="chat")
        bodies: list[str] = []
        for _ in range(100):
            try:
                bodies = await archived_bodies(a)
            except IqError:
                # ejabberd 23.01 on SQLite now and then answers a MAM query made while
                # it archives with internal-server-error: ask again
                bodies = []
            if bodies == ["old news", "fresh news"]:
                break
            await asyncio.sleep(0.1)
        assert bodies == ["old news", "fresh news"]
    finally:
        await disconnect_bot(a)
        await disconnect_bot(b)
    return alice, bob


# -- Prosody ------------------------------------------------------------------------------


def lua_items(path: Path) -> list[str]:
    """The ``item({...});`` records of an internal-storage list file."""
    return ["item(" + part for part in path.read_text().split("item(")[1:]]


def backdate(path: Path, marker: str, seconds: int) -> int:
    """Move the ``when`` of the one record containing ``marker`` back by ``seconds``."""
    items = lua_items(path)
    hits = [i for i, item in enumerate(items) if marker in item]
    assert len(hits) == 1, f"{marker!r} in {len(hits)} records of {path}"
    found = re.search(r'\["when"\] = (\d+);', items[hits[0]])
    assert found is not None
    when = int(found[1]) - seconds
    items[hits[0]] = items[hits[0]].replace(found[0], f'["when"] = {when};')
    path.write_text("".join(items))
    return when


def encode(name: str) -> str:
    """A name as Prosody's datamanager spells it on disk."""
    return "".join(c if c.isalnum() else f"%{ord(c):02x}" for c in name)


def lua_table(values: dict[str, object]) -> str:
    body = "".join(
        f'\t["{key}"] = {str(value).lower() if isinstance(value, bool) else value};\n'
        for key, value in values.items()
    )
    return "return {\n" + body + "};\n"


@pytest.mark.parametrize("server", ["prosody"], indirect=True)
async def test_prosody_expires_its_archive_and_uploads_after_the_snippets_period(
    server: DevServer,
) -> None:
    assert isinstance(server, SnippetProsody)
    alice, _bob = await exchange(server)
    a = await connect_bot(alice, PASSWORD, server, plugins=PLUGINS)
    try:
        old = await upload(a, server, "old.txt", b"old file")
        fresh = await upload(a, server, "fresh.txt", b"fresh file")
    finally:
        await disconnect_bot(a)
    assert await fetch(old.get_url) == (200, b"old file")  # control: nothing expired yet
    loaded = server._ctl(
        "shell",
        stdin='config:get("*", "archive_expires_after")\n'
        f'config:get("{server.upload_jid}", "http_file_share_expires_after")\n',
    )
    assert f'OK: "{DAYS}d"' in loaded and f"OK: {DAYS * 86400}" in loaded

    server.stop()
    data = server.data_dir
    user_host, upload_host = data / encode(server.domain), data / encode(server.upload_jid)
    slot_id = old.get_url.rstrip("/").split("/")[-2]
    backdate(upload_host / "uploads.list", f'["key"] = "{slot_id}"', AGE)
    when = backdate(user_host / "archive" / "alice.list", '"old news"', AGE)
    # mod_mam remembers which users got messages on which day; the backdated message's
    # day, as it would have been recorded then.
    day = datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d")
    (user_host / "archive_cleanup" / f"{encode(day)}.dat").write_text(lua_table({"alice": True}))
    # Both daily tasks last ran long ago: mod_cron runs them a second after start.
    (user_host / "cron.dat").write_text(lua_table({"mam/remove_expired_messages": 0}))
    (upload_host / "cron.dat").write_text(lua_table({"http_file_share/remove_expired_files": 0}))
    offset = server.log_path.stat().st_size
    server.start()

    def pruned() -> bool:
        log = server.log_path.read_text(errors="replace")[offset:]
        return "Deleted 1 expired messages for 1 users" in log and "All (1, " in log

    assert wait_until(pruned, PRUNE_TIMEOUT) is None, server.log_tail(30)
    assert (await fetch(old.get_url))[0] == 404
    assert await fetch(fresh.get_url) == (200, b"fresh file")
    a = await connect_bot(alice, PASSWORD, server, plugins=PLUGINS)
    try:
        assert await archived_bodies(a) == ["fresh news"]
    finally:
        await disconnect_bot(a)


# -- ejabberd -----------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["ejabberd"], indirect=True)
async def test_ejabberd_runs_the_snippets_upload_expiry_and_mam_command(
    server: DevServer, snippets: tuple[str, str]
) -> None:
    assert isinstance(server, SnippetEjabberd)
    dump = server.spool_dir / "dump.yml"
    server.ctl("dump_config", str(dump))
    loaded = dump.read_text()
    quota = re.search(r"^ +mod_http_upload_quota: *\n +max_days: *(\d+) *$", loaded, re.M)
    assert quota is not None and int(quota[1]) == DAYS, loaded
    alice, _bob = await exchange(server)
    a = await connect_bot(alice, PASSWORD, server, plugins=PLUGINS)
    try:
        old = await upload(a, server, "old.txt", b"old file")
        fresh = await upload(a, server, "fresh.txt", b"fresh file")
        assert await fetch(old.get_url) == (200, b"old file")  # control
        # mod_http_upload_quota deletes files older than max_days by their mtime, in a
        # sweep 0 to 12 hours after start and then daily: the old file is made 3 days
        # old, and the sweep the timer would send is sent now.
        [path] = [p for p in server.upload_dir.rglob("old.txt") if p.is_file()]
        then = time.time() - AGE
        os.utime(path, (then, then))
        proc = server.rpc(
            "mod_http_upload",
            "get_proc_name",
            f'[<<"{server.domain}">>, mod_http_upload_quota]',
        )
        assert server.rpc("erlang", "send", f"[{proc}, sweep]") == "sweep"

        def swept() -> bool:
            return not path.exists()

        assert wait_until(swept, PRUNE_TIMEOUT) is None, server.log_tail(30)
        assert (await fetch(old.get_url))[0] == 404
        assert await fetch(fresh.get_url) == (200, b"fresh file")

        db = sqlite3.connect(server.sqlite_path, timeout=10)
        try:
            with db:  # one transaction, committed before alice queries again
                moved = db.execute(
                    "UPDATE archive SET timestamp = timestamp - ? "
                    "WHERE username = 'alice' AND txt LIKE '%old news%'",
                    (AGE * 1_000_000,),
                ).rowcount
        finally:
            db.close()
        assert moved == 1
        assert await archived_bodies(a) == ["old news", "fresh news"]  # control
        server.ctl(*mam_command(snippets[1]))
        assert await archived_bodies(a) == ["fresh news"]
    finally:
        await disconnect_bot(a)
