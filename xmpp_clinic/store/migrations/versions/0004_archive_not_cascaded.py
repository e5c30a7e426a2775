"""Archived messages no longer vanish with their thread; joins the two branches.

The thread message archive is tamper-evident (II.2): deleting a thread must not delete
its archive as a side effect. Deleting archived messages is retention's job, done
deliberately and with receipts (I.7), so the foreign key from ``thread_messages`` to
``threads`` loses ``ON DELETE CASCADE``: deleting a thread that still has archived
messages is now refused by the database.

SQLite cannot alter a constraint in place; batch mode rebuilds the table (same columns,
indexes and constraints). PostgreSQL alters it directly.

Revision ID: 0004
Revises: 0002, 0003
"""

from alembic import op

revision = "0004"
down_revision = ("0002", "0003")
branch_labels = None
depends_on = None

FK = "fk_thread_messages_thread_id_threads"


def _replace_foreign_key(ondelete: str | None) -> None:
    with op.batch_alter_table("thread_messages") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.create_foreign_key(FK, "threads", ["thread_id"], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _replace_foreign_key(None)


def downgrade() -> None:
    _replace_foreign_key("CASCADE")
