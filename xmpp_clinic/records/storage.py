"""python-omemo storage for the records device: in the store, sealed by the key file (I.6).

python-omemo reads and writes its identity, pre-keys and sessions through a small
key-value interface (:class:`omemo.storage.Storage`). Each item is one row of
``records_state``: its name (which holds people's JIDs) as an HMAC under the key file's
key, its JSON value sealed with AES-GCM under that key and bound to the name, so rows
can neither be read nor swapped. python-omemo caches what it reads.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import JSONType
from sqlalchemy import delete, select

from xmpp_clinic.records.keys import seal, unseal
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.records import RecordsState


def _context(key: str) -> bytes:
    return b"records-state\x00" + key.encode()


def _row_key(secret: bytes, key: str) -> str:
    return hmac.new(secret, _context(key), hashlib.sha256).hexdigest()


class SealedStorage(Storage):
    """python-omemo's storage backed by ``records_state`` rows sealed with ``key``."""

    def __init__(self, store: Store, key: bytes) -> None:
        super().__init__()
        self._db = store
        self._key = key

    async def _load(self, key: str) -> Maybe[JSONType]:
        async with self._db.session() as session:
            sealed = await session.scalar(
                select(RecordsState.sealed).where(RecordsState.key == _row_key(self._key, key))
            )
        if sealed is None:
            return Nothing()
        value: JSONType = json.loads(unseal(self._key, sealed, _context(key)))
        return Just(value)

    async def _store(self, key: str, value: JSONType) -> None:
        sealed = seal(self._key, json.dumps(value).encode(), _context(key))
        async with self._db.session() as session:
            name = _row_key(self._key, key)
            row = await session.get(RecordsState, name)
            if row is None:
                session.add(RecordsState(key=name, sealed=sealed))
            else:
                row.sealed = sealed

    async def _delete(self, key: str) -> None:
        async with self._db.session() as session:
            await session.execute(
                delete(RecordsState).where(RecordsState.key == _row_key(self._key, key))
            )


async def identity_exists(store: Store) -> bool:
    """Whether the records device has state in the store (then its key file must exist)."""
    async with store.session() as session:
        return (await session.scalar(select(RecordsState.key).limit(1))) is not None
