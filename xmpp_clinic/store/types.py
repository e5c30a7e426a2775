"""Column types shared by the models: one UTC-aware timestamp for every table.

Everything the gateway stores is UTC (DESIGN.md, II.2). SQLite keeps timestamps as text
without an offset and hands them back naive; PostgreSQL's ``timestamptz`` hands them
back in the session's time zone. :class:`UtcDateTime` makes both boundaries the same: a
value is converted to UTC before it is written (a naive value is taken to be UTC
already) and every value read comes back timezone-aware in UTC, so nothing above the
store needs to repair timestamps.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from xmpp_clinic.clock import as_utc


class UtcDateTime(TypeDecorator[datetime]):
    """A ``DateTime(timezone=True)`` that stores UTC and returns aware UTC values."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"a timestamp must be a datetime, not {type(value).__name__}")
        return as_utc(value)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        return as_utc(value) if isinstance(value, datetime) else value

    @property
    def python_type(self) -> type[datetime]:
        return datetime
