"""Structured logging that never carries message content, keys or secrets (I.12, II.3).

Only our own log calls reach the handlers at DEBUG. slixmpp's stream loggers print whole
stanzas at DEBUG, so they are held at INFO whatever the configured level; SQLAlchemy's
engine logger prints every statement with its bound values (archived stanzas, identity
keys) already at INFO, so it and its database drivers are held at WARNING.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from xmpp_clinic.config import LoggingSettings

# Loggers that would print raw stanzas (and so message content) at DEBUG.
_STANZA_LOGGERS = ("slixmpp", "slixmpp_omemo", "omemo")
_SQL_LOGGERS = ("sqlalchemy", "aiosqlite", "asyncpg", "alembic")

_STANDARD_ATTRS = frozenset(
    logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__.keys() | {"message", "asctime"}
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool) else str(value)
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines with extras appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = [
            f"{key}={value}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD_ATTRS and not key.startswith("_")
        ]
        return base + (" " + " ".join(extras) if extras else "")


def setup_logging(settings: LoggingSettings) -> None:
    """Configure the root logger once, from settings."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.json_format else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    floor = logging.getLevelName(settings.level)
    for name in _STANZA_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.INFO, floor))
    for name in _SQL_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, floor))
