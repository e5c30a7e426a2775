"""Part sets and message deliveries of care threads (issue 11, II.2).

Revision ID: 0009
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "part_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("set_id", sa.String(128), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("nick", sa.String(1023), nullable=False),
        sa.Column("of", sa.Integer(), nullable=False),
        sa.Column("received", sa.String(4000), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("missing_noticed", sa.Boolean(), nullable=False),
        sa.Column("complete_noticed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_part_sets"),
        sa.UniqueConstraint("thread", "set_id", name="uq_part_sets_thread_set"),
    )
    op.create_index("ix_part_sets_thread", "part_sets", ["thread"])
    op.create_index("ix_part_sets_first_at", "part_sets", ["first_at"])
    op.create_table(
        "message_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stanza_id", sa.String(64), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("member", sa.String(320), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_message_deliveries"),
        sa.UniqueConstraint("stanza_id", "member", name="uq_message_deliveries_stanza_id"),
    )
    op.create_index("ix_message_deliveries_at", "message_deliveries", ["at"])
    op.create_index(
        "ix_message_deliveries_thread_member", "message_deliveries", ["thread", "member"]
    )


def downgrade() -> None:
    op.drop_index("ix_message_deliveries_thread_member", table_name="message_deliveries")
    op.drop_index("ix_message_deliveries_at", table_name="message_deliveries")
    op.drop_table("message_deliveries")
    op.drop_index("ix_part_sets_first_at", table_name="part_sets")
    op.drop_index("ix_part_sets_thread", table_name="part_sets")
    op.drop_table("part_sets")
