"""Private servers for bench/relay.py: one MUC service per archive storage, two gateways.

The dev servers (``xmpp_clinic.dev.servers``) run one MUC with one archive storage and
one gateway component. The relay bench compares the gateway with the server's own MUC
under each storage a hospital could choose, with the same clients in one run, so these
subclasses render, in ONE server process:

- a MUC service per archive storage (:data:`STORAGES`), see :func:`muc_domains`;
- two gateway components: ``clinic.<domain>`` (the gateway on SQLite) and
  ``clinic-pg.<domain>`` (the gateway on PostgreSQL), each with its own secret.

Prosody 0.12: three ``muc`` components with their own ``storage`` (per-host option):
``memory`` = mod_storage_memory (a real MAM archive, lost on restart), ``internal`` = the
file store, ``sql`` = mod_storage_sql on SQLite3 (lua-dbi-sqlite3).

ejabberd 23.01: MAM's ``db_type`` is per virtual host, so ``sql`` (mod_mam on SQLite, as
the dev server has it) is the MUC of the user domain and ``internal`` (Mnesia) is the MUC
of a second virtual host ``internal.<domain>`` whose ``host_config`` sets
``db_type: mnesia``; users of the first domain join its rooms through local routing.
ejabberd has no in-memory MAM backend: its ``memory`` room is a room of the user
domain's MUC with MAM off (only the room's in-memory history of 50 messages).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xmpp_clinic.dev.servers import (
    DevServer,
    EjabberdServer,
    ProsodyServer,
    ServerKind,
    free_port,
)
from xmpp_clinic.dev.servers.prosody import PRIVILEGE_MODULE, lua_str

Storage = Literal["memory", "internal", "sql"]
STORAGES: tuple[Storage, ...] = ("memory", "internal", "sql")
PG_COMPONENT_PREFIX = "clinic-pg"


def pg_component_jid(server: DevServer) -> str:
    """The second gateway component (the gateway on PostgreSQL)."""
    return f"{PG_COMPONENT_PREFIX}.{server.domain}"


def pg_component_secret(server: DevServer) -> str:
    """The second gateway's own secret."""
    return f"{server.component_secret}-pg"


def pg_component_port(server: DevServer) -> int:
    """Where the second gateway connects (ejabberd: a listener of its own)."""
    return getattr(server, "pg_component_port", server.component_port)


def muc_domains(server: DevServer) -> dict[Storage, str]:
    """The MUC service of each archive storage on ``server``."""
    if server.kind == "prosody":
        return {
            "memory": f"muc-memory.{server.domain}",
            "internal": server.muc_domain,
            "sql": f"muc-sql.{server.domain}",
        }
    return {
        "memory": server.muc_domain,
        "internal": f"conference.{EJABBERD_INTERNAL_VHOST_PREFIX}.{server.domain}",
        "sql": server.muc_domain,
    }


def room_archived(server: DevServer, storage: Storage) -> bool:
    """Whether the bench turns MAM on in the room (off: ejabberd's ``memory`` room)."""
    return not (server.kind == "ejabberd" and storage == "memory")


STORAGE_NOTES = {
    "prosody": {
        "memory": "mod_storage_memory",
        "internal": "internal (files)",
        "sql": "mod_storage_sql, SQLite3",
    },
    "ejabberd": {
        "memory": "no MAM (RAM history)",
        "internal": "mod_mam mnesia",
        "sql": "mod_mam sql, SQLite",
    },
}

EJABBERD_INTERNAL_VHOST_PREFIX = "internal"


@dataclass(kw_only=True)
class BenchProsody(ProsodyServer):
    """Prosody with a MUC per storage and a second gateway component."""

    def _muc_section(self) -> str:
        sections = []
        storage_lines = {
            "memory": '  storage = "memory"\n',
            "internal": '  storage = "internal"\n',
            "sql": (
                '  storage = "sql"\n'
                '  sql = { driver = "SQLite3"; database = "muc-archive.sqlite" }\n'
            ),
        }
        for storage, domain in muc_domains(self).items():
            sections.append(
                f"""Component {lua_str(domain)} "muc"
  modules_enabled = {{ "muc_mam" }}
  restrict_room_creation = false
  muc_log_by_default = true
  muc_log_presences = false
  max_history_messages = 50
{storage_lines[storage]}"""
            )
        return "\n".join(sections)

    def _host_section(self) -> str:
        lines = [f"VirtualHost {lua_str(self.domain)}"]
        if PRIVILEGE_MODULE.exists():
            grant = '{ roster = "both"; message = "outgoing"; presence = "roster" }'
            entities = "; ".join(
                f"[{lua_str(jid)}] = {grant}"
                for jid in (self.component_jid, pg_component_jid(self))
            )
            lines.append(f"  privileged_entities = {{ {entities} }}")
        return "\n".join(lines) + "\n"

    def _component_section(self) -> str:
        parts = []
        secrets = {self.component_jid: self.component_secret}
        secrets[pg_component_jid(self)] = pg_component_secret(self)
        for jid, secret in secrets.items():
            lines = [f"Component {lua_str(jid)}", f"  component_secret = {lua_str(secret)}"]
            if PRIVILEGE_MODULE.exists():
                lines.append('  modules_enabled = { "privilege" }')
            parts.append("\n".join(lines) + "\n")
        return "\n".join(parts)


@dataclass(kw_only=True)
class BenchEjabberd(EjabberdServer):
    """ejabberd with a second virtual host whose MUC archives in Mnesia, two gateways."""

    pg_component_port: int = field(default_factory=free_port)

    def _extra_ports(self) -> list[int]:
        return [*super()._extra_ports(), self.pg_component_port]

    def config(self) -> dict[str, Any]:
        config: dict[str, Any] = dict(super().config())
        vhost = f"{EJABBERD_INTERNAL_VHOST_PREFIX}.{self.domain}"
        config["hosts"] = [self.domain, vhost]
        # A listener of its own: ejabberd routes every host of a service listener to each
        # connection that authenticates on it (stanzas would go to either gateway).
        listeners = list(config["listen"])
        for listener in config["listen"]:
            if listener["module"] == "ejabberd_service":
                second = dict(listener, port=self.pg_component_port)
                second["hosts"] = {pg_component_jid(self): {"password": pg_component_secret(self)}}
                listeners.append(second)
        config["listen"] = listeners
        acl = dict(config["acl"])
        acl["gateway"] = {"server": [self.component_jid, pg_component_jid(self)]}
        config["acl"] = acl
        # host_config replaces the module list for that host: the user domain's modules
        # without the ones bound to fixed service names, MAM in Mnesia, its own MUC.
        modules = copy.deepcopy(dict(config["modules"]))
        for name in ("mod_http_upload", "mod_http_upload_quota", "mod_privilege", "mod_http_api"):
            modules.pop(name, None)
        modules["mod_mam"] = {"db_type": "mnesia", "default": "always"}
        muc = dict(modules["mod_muc"])
        muc["hosts"] = [muc_domains(self)["internal"]]
        modules["mod_muc"] = muc
        config["host_config"] = {vhost: {"modules": modules}}
        return config


def start_bench_server(kind: ServerKind, run_dir: Path) -> DevServer:
    """Start the bench's server of ``kind`` under ``run_dir``; the caller stops it."""
    cls: type[BenchProsody] | type[BenchEjabberd] = (
        BenchProsody if kind == "prosody" else BenchEjabberd
    )
    server = cls(run_dir=run_dir)
    server.start()
    return server
