"""The records member as the gateway and the CLI open it (I.6).

:func:`open_member` is what the gateway runs at start: the key file (created 0600 on
first start, a refusal naming ``[records] key_file`` when it is gone but an identity
exists), the OMEMO device and the documentation store. :func:`open_documentation` is
the read side for ``records show`` and the HIS bridge: it never creates a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from xmpp_clinic.records import member_jid
from xmpp_clinic.records.documentation import Documentation
from xmpp_clinic.records.identity import PublicDirectory, RecordsDevice
from xmpp_clinic.records.keys import read_key
from xmpp_clinic.records.storage import identity_exists
from xmpp_clinic.settings.records import RecordsSettings
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.records import DocumentationKey


@dataclass(frozen=True)
class RecordsMember:
    """The documentation member of one gateway: its device and the copies it keeps."""

    jid: str
    device: RecordsDevice
    documentation: Documentation
    key_created: bool  # the key file was made at this start (say so in the log)


async def open_member(
    store: Store, settings: RecordsSettings, component_jid: str, directory: PublicDirectory
) -> RecordsMember:
    """Open (or on first start create) the records member; raises RecordsKeyError."""
    jid = member_jid(settings.localpart, component_jid)
    device, created = await RecordsDevice.open(store, settings.key_file, jid, directory)
    documentation = Documentation(store, read_key(settings.key_file))
    return RecordsMember(jid, device, documentation, created)


async def open_documentation(store: Store, key_file: Path) -> Documentation | None:
    """The documentation for reading; None when nothing was ever documented (no key
    needed). A missing key file beside stored copies is RecordsKeyError naming it."""
    async with store.session() as session:
        copies = (await session.scalar(select(DocumentationKey.thread).limit(1))) is not None
    if not copies and not await identity_exists(store):
        return None
    return Documentation(store, read_key(key_file))
