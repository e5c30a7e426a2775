"""Alembic environment: migrations run on a connection handed in by Store.migrate()."""

from alembic import context

from xmpp_clinic.store import models  # noqa: F401  (registers every table)
from xmpp_clinic.store.base import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through xmpp_clinic.store.Store.migrate()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
