"""The documentation member: OMEMO state, documented threads, documentation copies (I.6).

Revision ID: 0011
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "records_state",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_records_state"),
    )
    op.create_table(
        "documented_threads",
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            ondelete="CASCADE",
            name="fk_documented_threads_thread_id_threads",
        ),
        sa.PrimaryKeyConstraint("thread_id", name="pk_documented_threads"),
    )
    op.create_table(
        "documentation_keys",
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.Column("anchor_position", sa.Integer(), nullable=False),
        sa.Column("anchor_digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("thread", name="pk_documentation_keys"),
    )
    op.create_table(
        "documentation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread", sa.String(64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message_id", sa.String(256), nullable=False),
        sa.Column("stanza_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_documentation"),
        sa.UniqueConstraint("thread", "position", name="uq_documentation_thread_position"),
    )
    op.create_index("ix_documentation_thread_at", "documentation", ["thread", "at"])


def downgrade() -> None:
    op.drop_index("ix_documentation_thread_at", table_name="documentation")
    op.drop_table("documentation")
    op.drop_table("documentation_keys")
    op.drop_table("documented_threads")
    op.drop_table("records_state")
