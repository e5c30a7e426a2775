"""One mapping from the gateway's domain errors to XMPP stanza errors (RFC 6120 8.3).

The domain rooms (threads, registry, archive, store) raise their own exceptions and know
nothing of XMPP. Here, and only here, each becomes a stanza error: IQ and presence
handlers are wrapped with :func:`maps_domain_errors`, and the ad-hoc commands turn the
same :func:`stanza_error` into an error note. Fail closed (I.12): an unavailable store
is ``internal-server-error``/``wait`` with a sentence saying to try again.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, ParamSpec, TypeVar

from slixmpp.exceptions import XMPPError

from xmpp_clinic.archive.messages import UnknownId
from xmpp_clinic.jids import InvalidJid
from xmpp_clinic.registry.service import RegistryError
from xmpp_clinic.store import StoreUnavailable
from xmpp_clinic.threads import ThreadError

P = ParamSpec("P")
R = TypeVar("R")
ErrorType = Literal["auth", "cancel", "continue", "modify", "wait"]

STORE_DOWN = "The store is unavailable right now. Try again shortly."
NO_SUCH_MESSAGE = "No such message in this archive."


class NotAMember(Exception):
    """An unknown thread or a non-member: both get the same answer, so nobody learns
    which threads exist (IV.2)."""


class FormError(ValueError):
    """A submitted form (ad-hoc command, MAM, muc#owner) that cannot be used as given;
    ``str()`` is one sentence for the person who filled it in."""


@dataclass(frozen=True)
class StanzaError:
    """The error one domain exception becomes on the wire."""

    condition: str  # a defined condition of urn:ietf:params:xml:ns:xmpp-stanzas
    type: ErrorType
    text: str = ""

    def exception(self) -> XMPPError:
        """As slixmpp's exception: raised from a handler, slixmpp sends the error reply."""
        return XMPPError(self.condition, self.text, etype=self.type)  # type: ignore[arg-type]


# Handlers let these through to :func:`stanza_error`; anything else is a bug.
DOMAIN_ERRORS = (
    StoreUnavailable,
    NotAMember,
    InvalidJid,
    FormError,
    ThreadError,
    RegistryError,
    UnknownId,
)


def stanza_error(exc: BaseException) -> StanzaError | None:
    """The stanza error for a domain exception; None for anything that is not one.

    Order matters: the specific classes come before their bases.
    """
    if isinstance(exc, StoreUnavailable):
        return StanzaError("internal-server-error", "wait", STORE_DOWN)
    if isinstance(exc, NotAMember):
        return StanzaError("item-not-found", "cancel")
    if isinstance(exc, InvalidJid):
        return StanzaError("jid-malformed", "modify", f"That is not a valid JID: {exc}")
    if isinstance(exc, FormError):
        return StanzaError("bad-request", "modify", str(exc))
    # A request the rules refuse (a name, a person outside the user domains, a device
    # limit): the requester can change it and try again.
    if isinstance(exc, ThreadError | RegistryError):
        return StanzaError("not-acceptable", "modify", str(exc))
    if isinstance(exc, UnknownId):
        return StanzaError("item-not-found", "cancel", NO_SUCH_MESSAGE)
    return None


def as_xmpp_error(exc: BaseException) -> XMPPError:
    """``exc`` as slixmpp's XMPPError; ``undefined-condition`` for a non-domain error."""
    found = stanza_error(exc)
    return found.exception() if found is not None else XMPPError("undefined-condition")


def maps_domain_errors(handler: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Wrap an async stanza handler so domain errors become their stanza errors.

    slixmpp answers an XMPPError raised from a handler with an error reply to the stanza
    that started it; other exceptions keep their usual path (logged as bugs).
    """

    @functools.wraps(handler)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await handler(*args, **kwargs)
        except DOMAIN_ERRORS as exc:
            raise as_xmpp_error(exc) from None

    return wrapper


def error_note(exc: BaseException) -> str | None:
    """The sentence an ad-hoc command shows for a domain error; None for other errors."""
    found = stanza_error(exc)
    return found.text or found.condition if found is not None else None
