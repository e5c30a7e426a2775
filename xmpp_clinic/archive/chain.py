"""Hash chains: each entry commits to the one before it (II.2).

An entry's hash is SHA-256 over the previous hash and the entry's canonical bytes, so
changing, deleting or reordering any entry breaks every hash after it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

GENESIS = bytes(32)


def link(previous: bytes, payload: bytes) -> bytes:
    """The hash of an entry with ``payload`` that follows an entry hashed ``previous``."""
    return hashlib.sha256(previous + len(payload).to_bytes(8, "big") + payload).digest()


def first_break(entries: Iterable[tuple[bytes, bytes]], start: bytes = GENESIS) -> int | None:
    """Index of the first entry whose stored hash does not match, or None if intact.

    ``entries`` yields ``(payload, stored_hash)`` in chain order.
    """
    previous = start
    for index, (payload, stored) in enumerate(entries):
        expected = link(previous, payload)
        if expected != stored:
            return index
        previous = stored
    return None
