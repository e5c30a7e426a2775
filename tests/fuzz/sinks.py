"""Where a marker text must never arrive: the gateway's logs and its store (I.12, II.1, II.3).

:class:`LogCapture` records every log record of the process at DEBUG, with the logger
levels the gateway itself sets (``xmpp_clinic.logs.setup_logging``: slixmpp held at INFO
because it prints whole stanzas at DEBUG, SQL at WARNING), rendered by the gateway's own
text formatter, so tracebacks and ``extra`` fields are scanned too. The hostile clients of
this suite do not use ``logging``, so every record is the gateway's (or the legit OMEMO
devices', which never see a marker).

:func:`store_hits` reads every table of the SQLite store and the raw bytes of its files
(database and write-ahead log), so a marker written anywhere -- a column, a row deleted
later, a table nobody queries -- is found.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xmpp_clinic.config import LoggingSettings
from xmpp_clinic.logs import TextFormatter, setup_logging


class LogCapture(logging.Handler):
    """Keeps the rendered text of every record (exceptions included)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(TextFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # a record that cannot be rendered is itself a finding
            self.lines.append(f"UNRENDERABLE {record.name}: {type(exc).__name__}: {exc}")

    def since(self, offset: int) -> list[str]:
        return self.lines[offset:]

    def hits(self, marker: str, offset: int = 0) -> list[str]:
        return [line for line in self.lines[offset:] if marker in line]

    def tracebacks(self, offset: int = 0) -> list[str]:
        """Records since ``offset`` that carry a traceback: handlers must not raise."""
        return [line for line in self.lines[offset:] if "Traceback (most recent call last)" in line]


@contextmanager
def gateway_logging() -> Iterator[LogCapture]:
    """The gateway's DEBUG logging configuration with a capturing handler; restored after."""
    root = logging.getLogger()
    names = [name for name in logging.root.manager.loggerDict if "." not in name]
    saved_levels = {name: logging.getLogger(name).level for name in names}
    saved_root = (root.level, list(root.handlers))
    setup_logging(LoggingSettings(level="DEBUG"))
    # setup_logging replaces the root handlers with a stream to stderr: keep pytest's
    # handlers instead and add ours.
    root.handlers[:] = saved_root[1]
    capture = LogCapture()
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved_root[0])
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def _values(connection: sqlite3.Connection) -> Iterator[tuple[str, str]]:
    tables = [
        row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    ]
    for table in tables:
        for row in connection.execute(f'SELECT * FROM "{table}"'):
            for value in row:
                if isinstance(value, bytes):
                    yield table, value.decode("utf-8", errors="replace")
                elif value is not None:
                    yield table, str(value)


def store_hits(database: Path, markers: list[str]) -> dict[str, list[str]]:
    """For each marker found: where (``table <name>`` or ``file <name>``)."""
    found: dict[str, set[str]] = {}
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        for table, text in _values(connection):
            for marker in markers:
                if marker in text:
                    found.setdefault(marker, set()).add(f"table {table}")
    finally:
        connection.close()
    for path in (database, database.with_name(database.name + "-wal")):
        if path.exists():
            data = path.read_bytes()
            for marker in markers:
                if marker.encode() in data:
                    found.setdefault(marker, set()).add(f"file {path.name}")
    return {marker: sorted(places) for marker, places in found.items()}
