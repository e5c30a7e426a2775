"""Bearer tokens for the HIS: created once, shown once, stored as SHA-256 (I.6, I.12).

A token is 32 random bytes (URL-safe text) behind the prefix ``xc_``; with that much
entropy an unsalted SHA-256 is a safe way to find it again without keeping it.
Creating and revoking a token are audit events.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import select

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.clock import utcnow
from xmpp_clinic.store import Store, StoreConflict
from xmpp_clinic.store.models.bridge import BridgeToken

Scope = Literal["records:read", "audit:read"]
SCOPES: tuple[Scope, ...] = get_args(Scope)
PREFIX = "xc_"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class TokenError(Exception):
    """A token operation that cannot be done; ``str()`` is one sentence."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the secret."""

    name: str
    scopes: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class Caller:
    """Who presented a valid token, and what it may read."""

    name: str
    scopes: frozenset[str]


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def check_scopes(scopes: list[str]) -> tuple[str, ...]:
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise TokenError(f"scopes must be among {', '.join(SCOPES)}; got {', '.join(scopes)!r}")
    return tuple(sorted(set(scopes)))


class TokenBook:
    """Create, list, revoke and check bridge tokens (I.6)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, scopes: list[str], *, actor: str) -> str:
        """A new token for ``name``; the only time its text exists outside the caller."""
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: letters, digits, . _ - (at most 64)")
        granted = check_scopes(scopes)
        token = PREFIX + secrets.token_urlsafe(32)
        try:
            async with self._store.session() as session:
                session.add(BridgeToken(name=name, digest=digest(token), scopes=" ".join(granted)))
                await session.flush()
                await append(session, AuditEvent(actor, "bridge.token-created", "ok", name))
        except StoreConflict:
            raise TokenError(
                f"a token named {name!r} exists; revoke it or pick another name"
            ) from None
        return token

    async def list(self) -> list[TokenInfo]:
        async with self._store.session() as session:
            rows = (await session.scalars(select(BridgeToken).order_by(BridgeToken.name))).all()
            return [
                TokenInfo(r.name, tuple(r.scopes.split()), r.created_at, r.revoked_at) for r in rows
            ]

    async def revoke(self, name: str, *, actor: str) -> None:
        async with self._store.session() as session:
            row = await session.scalar(select(BridgeToken).where(BridgeToken.name == name))
            if row is None:
                raise TokenError(f"no token named {name!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
                await append(session, AuditEvent(actor, "bridge.token-revoked", "ok", name))

    async def caller(self, token: str) -> Caller | None:
        """The caller a presented token stands for; None if unknown or revoked."""
        async with self._store.session() as session:
            row = await session.scalar(
                select(BridgeToken).where(BridgeToken.digest == digest(token))
            )
            if row is None or row.revoked_at is not None:
                return None
            return Caller(row.name, frozenset(row.scopes.split()))
