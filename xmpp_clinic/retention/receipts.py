"""Deletion receipts (DIN 66398 style): what was deleted, when, by which rule, signed (I.7).

A receipt is a canonical JSON body signed with the gateway's Ed25519 key
(``retention.receipt_key_file``; created with mode 0600 on first use when ``init`` has
not made it). Receipts are kept in the store and, apart from it, as files in
``retention.receipts_directory``: a restore from an older backup re-applies the deletions
they record (I.9), and an auditor can check one with ``purge verify-receipt FILE`` and
the public key alone. A receipt holds no message content.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import select

from xmpp_clinic.clock import as_utc, utcnow
from xmpp_clinic.store import Store
from xmpp_clinic.store.models.retention import DeletionReceiptRecord

VERSION = 1


class ReceiptInvalid(Exception):
    """A receipt whose signature, key or form does not check out."""


def canonical(body: dict[str, Any]) -> bytes:
    """The signed bytes: sorted keys, no spaces, UTF-8."""
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def key_id(public: Ed25519PublicKey) -> str:
    """A short name for a public key: the first 16 hex digits of SHA-256 over its raw bytes."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; created (mode 0600, folder 0700) if it does not exist."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        return key
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ReceiptInvalid(f"{path} does not hold an Ed25519 private key")
    return loaded


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A public key from a PEM file (public or private)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        private = serialization.load_pem_private_key(data, password=None)
        if isinstance(private, Ed25519PrivateKey):
            return private.public_key()
    else:
        public = serialization.load_pem_public_key(data)
        if isinstance(public, Ed25519PublicKey):
            return public
    raise ReceiptInvalid(f"{path} does not hold an Ed25519 key")


@dataclass(frozen=True)
class SignedReceipt:
    """A receipt body and its signature, as stored and as written to a file."""

    body: dict[str, Any]
    signature: bytes

    @property
    def id(self) -> str:
        return str(self.body["id"])

    @property
    def at(self) -> datetime:
        return datetime.fromisoformat(str(self.body["at"]))

    @property
    def kind(self) -> str:
        return str(self.body["kind"])

    def document(self) -> dict[str, Any]:
        return {"receipt": self.body, "signature": base64.b64encode(self.signature).decode()}

    def dumps(self) -> str:
        return json.dumps(self.document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, text: str) -> SignedReceipt:
        try:
            data = json.loads(text)
            body, signature = data["receipt"], base64.b64decode(data["signature"], validate=True)
        except (ValueError, KeyError, TypeError) as exc:
            raise ReceiptInvalid(f"not a deletion receipt ({type(exc).__name__})") from None
        if not isinstance(body, dict):
            raise ReceiptInvalid("not a deletion receipt (no receipt body)")
        return cls(body, signature)


def sign(key: Ed25519PrivateKey, kind: str, actor: str, items: list[dict[str, Any]],
         *, rule: str, kept: str, at: datetime | None = None) -> SignedReceipt:  # fmt: skip
    """A signed receipt for one deletion run: what (``items``), when, by which rule (I.7)."""
    body: dict[str, Any] = {
        "version": VERSION,
        "id": str(uuid.uuid4()),
        "at": as_utc(at or utcnow()).isoformat(),
        "kind": kind,
        "actor": actor,
        "rule": rule,
        "items": items,
        "kept": kept,
        "key_id": key_id(key.public_key()),
    }
    return SignedReceipt(body, key.sign(canonical(body)))


def verify(receipt: SignedReceipt, public: Ed25519PublicKey) -> None:
    """Raise :class:`ReceiptInvalid` unless ``public`` signed exactly this body."""
    if receipt.body.get("key_id") != key_id(public):
        raise ReceiptInvalid("the receipt was signed with another key")
    try:
        public.verify(receipt.signature, canonical(receipt.body))
    except InvalidSignature:
        raise ReceiptInvalid("the signature does not match: the receipt was changed") from None


class ReceiptBook:
    """Signs receipts and keeps them in the store and in the receipts folder (I.7)."""

    def __init__(self, store: Store, key_file: Path, directory: Path | None) -> None:
        self._store = store
        self._key_file = key_file
        self._directory = directory
        self._key: Ed25519PrivateKey | None = None

    @property
    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            self._key = load_or_create_key(self._key_file)
        return self._key

    def sign(self, kind: str, actor: str, items: list[dict[str, Any]],
             *, rule: str, kept: str) -> SignedReceipt:  # fmt: skip
        return sign(self.key, kind, actor, items, rule=rule, kept=kept)

    @staticmethod
    def row(receipt: SignedReceipt) -> DeletionReceiptRecord:
        """The row to add in the caller's transaction; :meth:`write_file` after the commit
        (a file never records a deletion that did not happen)."""
        return DeletionReceiptRecord(
            id=receipt.id, at=receipt.at, kind=receipt.kind,
            body=canonical(receipt.body).decode(), signature=receipt.signature,
        )  # fmt: skip

    def write_file(self, receipt: SignedReceipt) -> Path | None:
        """Keep ``receipt`` apart from the store too; no folder (a restore): store only."""
        if self._directory is None:
            return None
        self._directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = receipt.at.strftime("%Y%m%dT%H%M%S")
        path = self._directory / f"{stamp}-{receipt.kind}-{receipt.id}.json"
        path.write_text(receipt.dumps(), encoding="utf-8")
        return path

    async def list(self) -> list[SignedReceipt]:
        async with self._store.session() as session:
            query = select(DeletionReceiptRecord).order_by(DeletionReceiptRecord.at)
            rows = (await session.scalars(query)).all()
        return [SignedReceipt(json.loads(r.body), r.signature) for r in rows]


def read_folder(directory: Path) -> list[SignedReceipt]:
    """Every receipt file in ``directory``, oldest first (what a restore re-applies)."""
    if not directory.is_dir():
        return []
    found = [SignedReceipt.loads(p.read_text(encoding="utf-8")) for p in directory.glob("*.json")]
    return sorted(found, key=lambda r: r.at)
