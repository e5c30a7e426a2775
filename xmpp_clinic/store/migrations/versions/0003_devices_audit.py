"""OMEMO device registry, device notices, hash-chained audit events.

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(320), nullable=False),
        sa.Column("namespace", sa.String(64), nullable=False),
        sa.Column("device_id", sa.BigInteger(), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("identity_key", sa.LargeBinary(32), nullable=True),
        sa.Column("fingerprint", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_changed_at", TS, nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("first_seen", TS, nullable=False),
        sa.Column("last_seen", TS, nullable=True),
        sa.Column("approved_by", sa.String(320), nullable=True),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("revoked_by", sa.String(320), nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("asset_id", sa.String(128), nullable=True),
        sa.Column("valid_until", TS, nullable=True),
        sa.Column("expiry_warned_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint(
            "jid", "namespace", "device_id", name="uq_devices_jid_namespace_device"
        ),
    )
    op.create_index("ix_devices_jid", "devices", ["jid"])
    op.create_table(
        "device_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(320), nullable=False),
        sa.Column("text", sa.String(1000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_device_notices"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(500), nullable=False),
        sa.Column("note", sa.String(500), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.Column("base_seq", sa.Integer(), nullable=False),
        sa.Column("base_hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    genesis = bytes(32)
    op.bulk_insert(
        head, [{"id": 1, "seq": 0, "hash": genesis, "base_seq": 0, "base_hash": genesis}]
    )


def downgrade() -> None:
    op.drop_table("audit_head")
    op.drop_table("audit_events")
    op.drop_table("device_notices")
    op.drop_index("ix_devices_jid", table_name="devices")
    op.drop_table("devices")
