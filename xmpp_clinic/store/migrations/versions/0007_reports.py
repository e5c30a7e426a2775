"""Saved compliance reports (IV.4) and client software per session (I.13).

Revision ID: 0007
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "saved_reports",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_saved_reports"),
    )
    op.create_table(
        "client_sessions",
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("bare", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("os", sa.String(200), nullable=False),
        sa.Column("caps_node", sa.String(500), nullable=False),
        sa.Column("seen_at", TS, nullable=False),
        sa.Column("outdated", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("jid", name="pk_client_sessions"),
    )
    op.create_index("ix_client_sessions_bare", "client_sessions", ["bare"])


def downgrade() -> None:
    op.drop_index("ix_client_sessions_bare", table_name="client_sessions")
    op.drop_table("client_sessions")
    op.drop_table("saved_reports")
