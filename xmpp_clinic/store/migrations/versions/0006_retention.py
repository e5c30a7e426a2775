"""Retention: per-thread periods, archive anchors, signed deletion receipts (I.7, IV.8).

Revision ID: 0006
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "thread_retention",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("messages_minutes", sa.Integer(), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_thread_retention_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thread_id", name="pk_thread_retention"),
    )  # fmt: skip
    op.create_table(
        "archive_anchors",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("purged_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"], ["threads.id"], name="fk_archive_anchors_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("thread_id", name="pk_archive_anchors"),
    )  # fmt: skip
    op.create_table(
        "deletion_receipts",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("signature", sa.LargeBinary(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deletion_receipts"),
    )
    op.create_index("ix_deletion_receipts_at", "deletion_receipts", ["at"])


def downgrade() -> None:
    op.drop_index("ix_deletion_receipts_at", table_name="deletion_receipts")
    op.drop_table("deletion_receipts")
    op.drop_table("archive_anchors")
    op.drop_table("thread_retention")
