"""MAM paging at hospital scale: an index on (thread, row id) for keyset pages (issue 13).

A MAM page is ``thread_id = ? AND id < / > ? ORDER BY id LIMIT n``; with this index it is
one index range on both SQLite and PostgreSQL however large the thread's archive is.

Revision ID: 0014_archive
Revises: 0004
"""

from alembic import op

revision = "0014_archive"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_thread_messages_thread_id_id", "thread_messages", ["thread_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_thread_messages_thread_id_id", table_name="thread_messages")
