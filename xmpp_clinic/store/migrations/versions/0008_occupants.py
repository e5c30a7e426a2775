"""Joined sessions and bound nicks of care threads (issues 8.10, 8.6).

Revision ID: 0008
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "thread_occupants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("jid", sa.String(3071), nullable=False),
        sa.Column("nick", sa.String(256), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_thread_occupants"),
        sa.UniqueConstraint("thread", "jid", name="uq_thread_occupants_thread_jid"),
    )
    op.create_index("ix_thread_occupants_thread", "thread_occupants", ["thread"])
    op.create_table(
        "thread_nicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("jid", sa.String(320), nullable=False),
        sa.Column("nick", sa.String(256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_thread_nicks"),
        sa.UniqueConstraint("thread", "jid", name="uq_thread_nicks_thread_jid"),
    )
    op.create_index("ix_thread_nicks_thread", "thread_nicks", ["thread"])


def downgrade() -> None:
    op.drop_index("ix_thread_nicks_thread", table_name="thread_nicks")
    op.drop_table("thread_nicks")
    op.drop_index("ix_thread_occupants_thread", table_name="thread_occupants")
    op.drop_table("thread_occupants")
