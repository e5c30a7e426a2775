"""The records key file and AES-GCM sealing under it (I.6, II.1, I.9).

The key file holds 32 random bytes. It encrypts the records device's OMEMO state and
wraps the per-thread data keys of documentation copies; without it nothing the
documentation member stored can be read, so losing it while an identity exists is a
refusal to start, never a silent new identity.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_SETTING = "[records] key_file"


class RecordsKeyError(Exception):
    """The records key file is missing, unreadable or malformed; ``str()`` names it."""


def seal(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """nonce + AES-GCM(``key``) of ``plaintext``, bound to ``context`` (associated data)."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, context)


def unseal(key: bytes, sealed: bytes, context: bytes) -> bytes:
    """The plaintext of :func:`seal`; raises ``cryptography``'s InvalidTag when tampered."""
    return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context)


def read_key(path: Path) -> bytes:
    """The key in ``path``; RecordsKeyError naming the setting when it is not usable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RecordsKeyError(
            f"{KEY_SETTING}: the records key file {path} is missing, but the documentation "
            "member's identity and copies exist in the store and cannot be read without it; "
            "restore the key file from its backup (a new key would lose every documentation copy)"
        ) from None
    except OSError as exc:
        raise RecordsKeyError(
            f"{KEY_SETTING}: cannot read the records key file {path} ({exc.strerror})"
        ) from None
    if len(raw) != KEY_BYTES:
        raise RecordsKeyError(
            f"{KEY_SETTING}: {path} does not hold a records key ({KEY_BYTES} bytes expected)"
        )
    return raw


def create_key(path: Path) -> bytes:
    """A new key written to ``path`` with mode 0600 (refuses to overwrite a file)."""
    key = secrets.token_bytes(KEY_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


def load_key(path: Path, *, identity_exists: bool) -> tuple[bytes, bool]:
    """The records key and whether it was created now.

    A missing file is created (0600) only while no identity exists; with an identity in
    the store it is :class:`RecordsKeyError` naming ``[records] key_file`` (fail closed).
    """
    if path.exists() or identity_exists:
        return read_key(path), False
    return create_key(path), True
