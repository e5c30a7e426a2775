"""HIS bridge: API tokens, ADT cases, thread bindings, the HL7 outbox (I.6).

Revision ID: 0010
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bridge_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_bridge_tokens"),
        sa.UniqueConstraint("name", name="uq_bridge_tokens_name"),
        sa.UniqueConstraint("digest", name="uq_bridge_tokens_digest"),
    )
    op.create_table(
        "bridge_cases",
        sa.Column("visit", sa.String(64), nullable=False),
        sa.Column("patient", sa.String(64), nullable=False),
        sa.Column("ward", sa.String(64), nullable=False),
        sa.Column("admitted_at", TS, nullable=True),
        sa.Column("discharged_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("visit", name="pk_bridge_cases"),
    )
    op.create_index("ix_bridge_cases_patient", "bridge_cases", ["patient"])
    op.create_table(
        "bridge_thread_cases",
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("visit", sa.String(64), nullable=False),
        sa.Column("bound_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("thread", name="pk_bridge_thread_cases"),
    )
    op.create_index("ix_bridge_thread_cases_visit", "bridge_thread_cases", ["visit"])
    op.create_table(
        "bridge_outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("control_id", sa.String(32), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("event", sa.String(8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=False),
        sa.Column("last_result", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_bridge_outbox"),
        sa.UniqueConstraint("control_id", name="uq_bridge_outbox_control_id"),
    )
    op.create_index("ix_bridge_outbox_thread", "bridge_outbox", ["thread"])


def downgrade() -> None:
    op.drop_index("ix_bridge_outbox_thread", table_name="bridge_outbox")
    op.drop_table("bridge_outbox")
    op.drop_index("ix_bridge_thread_cases_visit", table_name="bridge_thread_cases")
    op.drop_table("bridge_thread_cases")
    op.drop_index("ix_bridge_cases_patient", table_name="bridge_cases")
    op.drop_table("bridge_cases")
    op.drop_table("bridge_tokens")
