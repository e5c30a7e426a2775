"""Read the live state a report needs from the store (I.11, IV.4).

Read-only. Tables other rooms add over time (retention receipts, backups, bridge
tokens, documentation flags) are looked up by name through :data:`OPTIONAL`: where a
table or column is absent, the fact is ``None`` and the report says "not available"
instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from xmpp_clinic.archive.audit import AuditLog
from xmpp_clinic.archive.messages import MessageArchive
from xmpp_clinic.clock import as_utc, iso
from xmpp_clinic.report.backups import BackupFacts, backup_facts
from xmpp_clinic.report.clients import ClientSoftware, check_client
from xmpp_clinic.report.facts import AuditFacts, ClientFacts, DeviceFacts, StateFacts
from xmpp_clinic.settings.report import ClientsSettings
from xmpp_clinic.settings.retention import BackupSettings
from xmpp_clinic.store import Store


@dataclass(frozen=True)
class LatestRow:
    """The newest time in one of ``tables``' ``columns``: "when did X last happen"."""

    tables: tuple[str, ...]
    columns: tuple[str, ...]
    where: str = "1 = 1"  # a fixed condition from this table, never from input


OPTIONAL: dict[str, LatestRow] = {
    "last_purge": LatestRow(("deletion_receipts",), ("at",), "kind = 'purge'"),
    "last_receipt": LatestRow(("deletion_receipts",), ("at",)),
}


def _schema(conn: Connection) -> dict[str, set[str]]:
    found = inspect(conn)
    return {name: {c["name"] for c in found.get_columns(name)} for name in found.get_table_names()}


async def _latest(
    conn: AsyncConnection, schema: dict[str, set[str]], what: LatestRow
) -> str | None:
    """ISO time of the newest row, "never" if the table is empty, None if absent."""
    for table in what.tables:
        columns = schema.get(table)
        if columns is None:
            continue
        for column in what.columns:
            if column in columns:
                # Names come from OPTIONAL above, never from input.
                query = text(f"SELECT max({column}) FROM {table} WHERE {what.where}")
                value = (await conn.execute(query)).scalar()
                if isinstance(value, str):
                    value = datetime.fromisoformat(value)
                return iso(as_utc(value)) if isinstance(value, datetime) else "never"
    return None


async def _count(conn: AsyncConnection, sql: str) -> int:
    return int((await conn.execute(text(sql))).scalar() or 0)


async def _devices(conn: AsyncConnection) -> DeviceFacts:
    rows = (await conn.execute(text("SELECT state, count(*) FROM devices GROUP BY state"))).all()
    by_state = {str(state): int(n) for state, n in rows}
    approved = "FROM devices WHERE state = 'approved'"
    return DeviceFacts(
        pending=by_state.get("pending", 0),
        approved=by_state.get("approved", 0),
        expired=by_state.get("expired", 0),
        revoked=by_state.get("revoked", 0),
        approved_without_fingerprint=await _count(
            conn, f"SELECT count(*) {approved} AND fingerprint IS NULL"
        ),
        approved_without_asset=await _count(
            conn, f"SELECT count(*) {approved} AND (asset_id IS NULL OR asset_id = '')"
        ),
    )


async def _clients(conn: AsyncConnection, settings: ClientsSettings) -> ClientFacts:
    """Sessions recorded by the gateway, judged against today's minimums (I.13)."""
    rows = (
        await conn.execute(text("SELECT jid, name, version, os, caps_node FROM client_sessions"))
    ).all()
    outdated = []
    for jid, name, version, os_text, node in rows:
        check = check_client(ClientSoftware(name, version, os_text, node), settings)
        if check.outdated:
            outdated.append(f"{jid}: {check.reason}")
    return ClientFacts(sessions=len(rows), outdated=tuple(sorted(outdated)))


async def _bridge_tokens(conn: AsyncConnection, columns: set[str]) -> tuple[str, ...]:
    if not {"name", "scopes"} <= columns:
        return ()
    # Only tokens that still open the bridge count as issued; revoked ones are history.
    live = " WHERE revoked_at IS NULL" if "revoked_at" in columns else ""
    rows = (await conn.execute(text(f"SELECT name, scopes FROM bridge_tokens{live}"))).all()
    return tuple(f"{name}: {scopes}" for name, scopes in rows)


async def gather_state(
    store: Store, clients: ClientsSettings, backup: BackupSettings | None = None
) -> StateFacts:
    """Everything the report says about the store (and the newest backup), read now."""
    async with store.engine.connect() as conn:
        schema = await conn.run_sync(_schema)
        threads = await _count(conn, "SELECT count(*) FROM threads")
        members = await _count(conn, "SELECT count(*) FROM thread_members")
        devices = await _devices(conn)
        latest = {key: await _latest(conn, schema, what) for key, what in OPTIONAL.items()}
        undocumented = None
        if "documented" in schema.get("threads", set()):
            undocumented = await _count(
                conn, "SELECT count(*) FROM threads WHERE documented IS NOT TRUE"
            )
        tokens = None
        if "bridge_tokens" in schema:
            tokens = await _bridge_tokens(conn, schema["bridge_tokens"])
        client_facts = await _clients(conn, clients) if "client_sessions" in schema else None
        saved = 0
        last_saved = None
        if "saved_reports" in schema:
            saved = await _count(conn, "SELECT count(*) FROM saved_reports")
            last_saved = await _latest(conn, schema, LatestRow(("saved_reports",), ("at",)))
    backups = await backup_facts(backup) if backup is not None else BackupFacts(None, None)
    return StateFacts(
        threads=threads,
        members=members,
        devices=devices,
        audit=await _audit(store),
        clients=client_facts,
        undocumented_threads=undocumented,
        last_purge=latest["last_purge"],
        last_receipt=latest["last_receipt"],
        last_backup=backups.last_backup,
        last_backup_verified=backups.verified,
        bridge_tokens=tokens,
        saved_reports=saved,
        last_saved_report=last_saved if saved else None,
    )


async def _audit(store: Store) -> AuditFacts:
    """The audit chain and every thread's archive chain, verified now (II.2)."""
    report = await AuditLog(store).verify()
    archive = MessageArchive(store)
    async with store.engine.connect() as conn:
        threads = (await conn.execute(text("SELECT id, name FROM threads ORDER BY name"))).all()
    broken = []
    for thread_id, name in threads:
        seq = await archive.verify(int(thread_id))
        if seq is not None:
            broken.append(f"{name} at message {seq}")
    return AuditFacts(
        intact=report.intact,
        events=report.count,
        head=f"{report.head_seq}:{report.head_hash}",
        problem=report.problem or "",
        broken_archives=tuple(broken),
    )
