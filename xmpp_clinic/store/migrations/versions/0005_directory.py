"""The hospital directory: persons, JIDs, group memberships; threads bound to groups.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "directory_persons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("staff_id", sa.String(200), nullable=False),
        sa.Column("role", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_directory_persons"),
        sa.UniqueConstraint("key", name="uq_directory_persons_key"),
    )
    op.create_table(
        "directory_jids",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("jid", sa.String(320), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["directory_persons.id"],
            name="fk_directory_jids_person_id_directory_persons",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_directory_jids"),
        sa.UniqueConstraint("jid", name="uq_directory_jids_jid"),
    )
    op.create_index("ix_directory_jids_person_id", "directory_jids", ["person_id"])
    op.create_table(
        "directory_memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("group", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["directory_persons.id"],
            name="fk_directory_memberships_person_id_directory_persons",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_directory_memberships"),
        sa.UniqueConstraint("person_id", "group", name="uq_directory_memberships_person_group"),
    )
    op.create_index("ix_directory_memberships_person_id", "directory_memberships", ["person_id"])
    op.create_index("ix_directory_memberships_group", "directory_memberships", ["group"])
    for table, column, unique in (
        ("thread_bindings", sa.Column("group", sa.String(64), nullable=False), "group"),
        ("thread_bound_members", sa.Column("jid", sa.String(320), nullable=False), "jid"),
    ):
        op.create_table(
            table,
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("thread_id", sa.Integer(), nullable=False),
            column,
            sa.ForeignKeyConstraint(
                ["thread_id"],
                ["threads.id"],
                name=f"fk_{table}_thread_id_threads",
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("id", name=f"pk_{table}"),
            sa.UniqueConstraint("thread_id", unique, name=f"uq_{table}_thread_{unique}"),
        )
        op.create_index(f"ix_{table}_thread_id", table, ["thread_id"])


def downgrade() -> None:
    op.drop_table("thread_bound_members")
    op.drop_table("thread_bindings")
    op.drop_table("directory_memberships")
    op.drop_table("directory_jids")
    op.drop_table("directory_persons")
