"""Attachments of documentation copies (I.6, I.10).

Revision ID: 0013_records
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_records"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documentation_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("sealed_meta", sa.LargeBinary(), nullable=False),
        sa.Column("sealed_content", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documentation_attachments"),
        sa.UniqueConstraint(
            "thread", "position", "number", name="uq_documentation_attachments_thread_position"
        ),
    )


def downgrade() -> None:
    op.drop_table("documentation_attachments")
