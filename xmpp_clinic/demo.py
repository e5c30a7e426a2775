"""``xmpp-clinic demo``: the gateway doing its job on an embedded default.

Starts a private Prosody on loopback, attaches a gateway with the strictest defaults and
an SQLite store in a temporary folder, and lets a scripted clinician's client discover
what the gateway offers. Nothing outside the temporary folder is touched; everything
started here is stopped again.
"""

from __future__ import annotations

import secrets
import tempfile
from pathlib import Path
from typing import Any

import tomli_w
from rich.console import Console
from rich.table import Table
from slixmpp import JID, ClientXMPP

from xmpp_clinic.app import Gateway
from xmpp_clinic.config import load_settings
from xmpp_clinic.devserver import DevServer, start_server

console = Console(emoji=False, highlight=False)


def write_demo_config(server: DevServer, directory: Path) -> Path:
    """A gateway config for the demo server, with the secret in a file (never inline)."""
    secret = directory / "component.secret"
    secret.write_text(server.component_secret + "\n", encoding="utf-8")
    secret.chmod(0o600)
    data: dict[str, Any] = {
        "xmpp": {
            "component_jid": server.component_jid,
            "server_host": server.host,
            "server_port": server.component_port,
            "secret_file": str(secret),
            "user_domains": [server.domain],
        },
        "store": {"url": f"sqlite+aiosqlite:///{directory / 'xmpp-clinic.db'}"},
        "privacy": {
            "notice_url": f"https://{server.domain}/privacy/messaging",
            "controller_contact": f"mailto:dpo@{server.domain}",
        },
    }
    path = directory / "xmpp-clinic.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


async def connect_clinician(jid: str, password: str, server: DevServer) -> ClientXMPP:
    """A plain client on the loopback c2s port (plaintext is for the demo only)."""
    client = ClientXMPP(jid, password)
    client.enable_direct_tls = False
    client.enable_starttls = False
    client.enable_plaintext = True
    client.register_plugin("xep_0030")
    client.register_plugin("xep_0128")
    client.plugin["feature_mechanisms"].unencrypted_scram = True
    client.connect(server.host, server.c2s_port)
    await client.wait_until("session_start", timeout=20)
    return client


async def discover(client: ClientXMPP, component: str) -> None:
    """Ask the gateway what it is, and print it the way an admin would read it."""
    info = await client.plugin["xep_0030"].get_info(jid=JID(component), timeout=10)
    query = info["disco_info"]
    table = Table(title=f"disco#info of {component}", show_lines=False)
    table.add_column("kind")
    table.add_column("value")
    for category, itype, _lang, name in query["identities"]:
        table.add_row("identity", f"{category}/{itype}  {name or ''}")
    for feature in sorted(query["features"]):
        table.add_row("feature", feature)
    for form in query["forms"]:
        for var, field in form.get_fields().items():
            if var != "FORM_TYPE":
                table.add_row(field["label"] or var, str(field["value"]))
    console.print(table)


async def run_demo() -> None:
    """Run the whole demo; returns when everything is stopped again."""
    with tempfile.TemporaryDirectory(prefix="xmpp-clinic-demo-") as tmp:
        run_dir = Path(tmp)
        console.rule("[bold]xmpp-clinic demo")
        console.print("Starting a private Prosody on loopback ...")
        server = start_server("prosody", run_dir / "prosody")
        try:
            console.print(
                f"Prosody up: users at [cyan]{server.domain}[/], c2s port {server.c2s_port}, "
                f"component port {server.component_port}"
            )
            settings = load_settings(write_demo_config(server, run_dir))
            gateway = Gateway(settings)
            await gateway.start()
            try:
                await gateway.component.wait_online(timeout=15)
                console.print(f"Gateway attached as [cyan]{settings.xmpp.component_jid}[/]")
                password = secrets.token_urlsafe(12)
                alice = server.register("dr.alice", password)
                client = await connect_clinician(alice, password, server)
                console.print(f"Clinician [cyan]{alice}[/] asks the gateway what it offers:")
                await discover(client, settings.xmpp.component_jid)
                client.disconnect()
            finally:
                await gateway.stop()
        finally:
            server.stop()
        console.print(
            "[green]Demo finished[/]: server and gateway stopped, temporary data removed."
        )
