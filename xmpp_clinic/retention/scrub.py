"""Finding and replacing a name (a person's JID, a thread's name) in every table (I.7, II.3).

Erasure must leave no row that names the person or thread except the signed receipt and
the erasure's audit event. Tables with their own rules (the chained audit log and
archive, memberships, devices) are handled by :mod:`.erasure`; every other string column
of every table, including tables added later by other rooms, is scrubbed here: the name
is replaced by a pseudonym, never by guesswork about what a column means.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from sqlalchemy import String, Table, Text, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from xmpp_clinic.store.base import Base

Scrub = Callable[[str], str]


def name_pattern(name: str) -> re.Pattern[str]:
    """``name`` as a whole word: ``alice@h.test`` is not found inside ``malice@h.test``."""
    return re.compile(r"(?<![\w.+-])" + re.escape(name) + r"(?![\w-]|\.\w)", re.IGNORECASE)


def scrubber(name: str, pseudonym: str) -> Scrub:
    pattern = name_pattern(name)
    return lambda text: pattern.sub(pseudonym, text) if text else text


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def like(name: str) -> str:
    """A LIKE pattern (escape character backslash) for text containing ``name``."""
    return f"%{_escaped(name)}%"


def _text_columns(table: Table) -> list[str]:
    return [c.name for c in table.columns if isinstance(c.type, String | Text)]


async def scrub_tables(
    session: AsyncSession, name: str, scrub: Scrub, skip: Collection[str]
) -> dict[str, int]:
    """Replace ``name`` in every string column of every table not in ``skip``.

    Returns ``{"table.column": rows changed}``. Tables without a primary key cannot be
    updated row by row and are reported as ``table.*: -1`` for the receipt.
    """
    changed: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in skip:
            continue
        keys = list(table.primary_key.columns)
        for column in _text_columns(table):
            col = table.c[column]
            found = (
                await session.execute(select(*keys, col).where(col.like(like(name), escape="\\")))
            ).all()
            if found and not keys:
                changed[f"{table.name}.*"] = -1
                continue
            count = 0
            for row in found:
                value = row[-1]
                new = scrub(value)
                if new == value:
                    continue
                match = [k == row[i] for i, k in enumerate(keys)]
                await session.execute(update(table).where(*match).values({column: new}))
                count += 1
            if count:
                changed[f"{table.name}.{column}"] = count
    return changed


async def delete_keyed(
    session: AsyncSession, column: str, value: str, skip: Collection[str]
) -> dict[str, int]:
    """Delete rows whose ``column`` (by that name, in any table not in ``skip``) is ``value``
    or, for a JID, one of its full JIDs (``value/resource``).

    The convention the rooms follow: a ``jid`` column holds the person a row is about, a
    ``thread`` column the thread's name. Such rows exist only for their subject, so they
    go; other mentions are pseudonymised by :func:`scrub_tables`.
    """
    removed: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        if table.name in skip or column not in table.c:
            continue
        col = table.c[column]
        if not isinstance(col.type, String | Text):
            continue
        found = await session.execute(
            delete(table).where((col == value) | col.like(_escaped(value) + "/%", escape="\\"))
        )
        if found.rowcount:  # type: ignore[attr-defined]
            removed[table.name] = int(found.rowcount)  # type: ignore[attr-defined]
    return removed


async def rows_naming(session: AsyncSession, name: str) -> dict[str, int]:
    """For tests and reports: ``{"table.column": rows}`` whose text contains ``name``."""
    pattern = name_pattern(name)
    found: dict[str, int] = {}
    for table in Base.metadata.sorted_tables:
        for column in _text_columns(table):
            col = table.c[column]
            values = (
                await session.scalars(select(col).where(col.like(like(name), escape="\\")))
            ).all()
            hits = sum(1 for v in values if pattern.search(v))
            if hits:
                found[f"{table.name}.{column}"] = hits
    return found
