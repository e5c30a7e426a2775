"""A gateway config attached to a private server: for the demo, the tests and the bench."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from .base import DevServer


def write_gateway_config(server: DevServer, directory: Path, **sections: dict[str, Any]) -> Path:
    """Write ``directory/xmpp-clinic.toml`` for a gateway on ``server``; ``sections`` are
    merged over the defaults. The secret goes to a 0600 file, never into the config."""
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
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = directory / "xmpp-clinic.toml"
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path
