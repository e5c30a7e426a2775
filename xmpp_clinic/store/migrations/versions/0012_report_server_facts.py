"""Server facts the gateway observed at connect (IV.2, I.3, IV.8).

Revision ID: 0012_report
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_report"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "server_facts",
        sa.Column("domain", sa.String(1023), nullable=False),
        sa.Column("fact", sa.String(64), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("domain", "fact", name="pk_server_facts"),
    )


def downgrade() -> None:
    op.drop_table("server_facts")
