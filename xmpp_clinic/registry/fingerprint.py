"""Identity keys and their fingerprints, as the phone's own screen shows them (I.4).

IT compares the fingerprint in the registry with the one on the device before approving
it, so it is formatted as the clients display it:

- the fingerprint is the hex of the 32-byte **Curve25519** form of the identity key,
  without the ``0x05`` type byte that legacy bundles put in front (python-omemo's
  ``SessionManager.format_identity_key``, XEP-0384 "Security Considerations");
- legacy OMEMO bundles publish that Curve25519 key (33 bytes, ``0x05`` prefix); OMEMO 2
  bundles publish the Ed25519 key, which is converted;
- Conversations and Dino show eight groups of eight lowercase hex digits; Gajim shows the
  same digits in upper case, four groups per line.
"""

from __future__ import annotations

import re

import xeddsa

from xmpp_clinic.omemo import LEGACY_NS, OMEMO2_NS

KEY_SIZE = 32
_HEX64 = re.compile(r"[0-9a-f]{64}")


class BadIdentityKey(ValueError):
    """A bundle's identity key has the wrong length, prefix or curve point."""


def identity_key_from_bundle(namespace: str, raw: bytes) -> bytes:
    """The 32-byte identity key from a bundle's ``identityKey`` / ``ik`` element."""
    if namespace == LEGACY_NS:
        if len(raw) == KEY_SIZE + 1 and raw[0] == 0x05:
            return raw[1:]
        raise BadIdentityKey("legacy identity keys are 33 bytes starting with 0x05")
    if namespace == OMEMO2_NS:
        if len(raw) == KEY_SIZE:
            return raw
        raise BadIdentityKey("OMEMO 2 identity keys are 32-byte Ed25519 keys")
    raise BadIdentityKey(f"unknown namespace {namespace!r}")


def fingerprint(namespace: str, identity_key: bytes) -> str:
    """64 lowercase hex digits of the key's Curve25519 form (what the clients show)."""
    if len(identity_key) != KEY_SIZE:
        raise BadIdentityKey("identity keys are 32 bytes")
    if namespace == LEGACY_NS:
        return identity_key.hex()
    if namespace == OMEMO2_NS:
        try:
            return xeddsa.ed25519_pub_to_curve25519_pub(identity_key).hex()
        except Exception as exc:  # libxeddsa rejects points that are not on the curve
            raise BadIdentityKey("not a valid Ed25519 public key") from exc
    raise BadIdentityKey(f"unknown namespace {namespace!r}")


def normalise(text: str) -> str:
    """A fingerprint as typed by a person (spaces, colons, upper case) -> 64 hex digits."""
    digits = re.sub(r"[\s:]", "", text).lower()
    if digits.startswith("05") and len(digits) == 66:
        digits = digits[2:]
    if not _HEX64.fullmatch(digits):
        raise ValueError("a fingerprint is 64 hex digits")
    return digits


def format_fingerprint(hex_digits: str, style: str = "conversations") -> str:
    """Group the digits as a client shows them: ``conversations`` (also Dino) or ``gajim``."""
    groups = [hex_digits[i : i + 8] for i in range(0, len(hex_digits), 8)]
    if style == "gajim":
        upper = [group.upper() for group in groups]
        return "\n".join(" ".join(upper[i : i + 4]) for i in range(0, len(upper), 4))
    return " ".join(groups)
