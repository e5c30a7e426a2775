"""Care threads, members and the thread message archive.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "threads",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_threads"),
        sa.UniqueConstraint("name", name="uq_threads_name"),
    )
    op.create_table(
        "thread_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(320), nullable=False),
        sa.Column("affiliation", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name="fk_thread_members_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_thread_members"),
        sa.UniqueConstraint("thread_id", "jid", name="uq_thread_members_thread_jid"),
    )
    op.create_index("ix_thread_members_thread_id", "thread_members", ["thread_id"])
    op.create_table(
        "thread_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("thread_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("stanza_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sender", sa.String(320), nullable=False),
        sa.Column("sender_resource", sa.String(1023), nullable=False),
        sa.Column("nick", sa.String(1023), nullable=False),
        sa.Column("occupant_id", sa.String(64), nullable=False),
        sa.Column("stanza", sa.Text(), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name="fk_thread_messages_thread_id_threads",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_thread_messages"),
        sa.UniqueConstraint("stanza_id", name="uq_thread_messages_stanza_id"),
        sa.UniqueConstraint("thread_id", "seq", name="uq_thread_messages_thread_seq"),
    )
    op.create_index("ix_thread_messages_sender", "thread_messages", ["sender"])
    op.create_index("ix_thread_messages_thread_at", "thread_messages", ["thread_id", "at"])


def downgrade() -> None:
    op.drop_table("thread_messages")
    op.drop_table("thread_members")
    op.drop_table("threads")
