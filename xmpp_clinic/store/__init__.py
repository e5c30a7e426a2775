"""Persistence: SQLAlchemy 2 models, the async engine, Alembic migrations.

Nothing here knows about anything above it (DESIGN.md).
"""

from xmpp_clinic.store.base import Base
from xmpp_clinic.store.engine import Store, StoreConflict, StoreUnavailable

__all__ = ["Base", "Store", "StoreConflict", "StoreUnavailable"]
