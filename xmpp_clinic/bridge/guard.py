"""Who is calling, what they may read, how often, and the audit event for every request.

Every request -- answered, refused, or rate-limited -- becomes one audit event: who
(``bridge:<token name>`` or ``bridge:anonymous``), what (method and route template),
which thread, and the result; never a query value or a response body (II.3, I.6).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.responses import Response

from xmpp_clinic.archive.audit import AuditEvent, append
from xmpp_clinic.bridge.problems import REASONS, Problem, render
from xmpp_clinic.bridge.tokens import Caller, TokenBook
from xmpp_clinic.store import Store, StoreUnavailable

log = logging.getLogger(__name__)
REQUEST = "bridge.request"
bearer = HTTPBearer(auto_error=False, description="A token from `xmpp-clinic bridge token create`")


@dataclass
class RateLimit:
    """A fixed one-minute window per caller key (token digest or client address)."""

    per_minute: int
    _windows: dict[str, tuple[int, int]] = field(default_factory=dict)

    def allow(self, key: str, now: float | None = None) -> bool:
        minute = int((now if now is not None else time.monotonic()) // 60)
        start, count = self._windows.get(key, (minute, 0))
        if start != minute:
            start, count = minute, 0
        if len(self._windows) > 10000:  # bounded memory under a flood of addresses
            self._windows.clear()
        self._windows[key] = (start, count + 1)
        return count < self.per_minute


def _key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    if header:
        return "t:" + hashlib.sha256(header.encode()).hexdigest()[:16]
    return "a:" + (request.client.host if request.client else "?")


def scoped(tokens: TokenBook, scope: str) -> Callable[..., Awaitable[Caller]]:
    """A dependency: the caller, if its bearer token is valid and holds ``scope``."""

    async def dependency(request: Request) -> Caller:
        credentials: HTTPAuthorizationCredentials | None = await bearer(request)
        if credentials is None:
            raise Problem(401, "a bearer token is required", {"WWW-Authenticate": "Bearer"})
        caller = await tokens.caller(credentials.credentials)
        if caller is None:
            raise Problem(
                401,
                "the token is unknown or revoked",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        request.state.caller = caller.name
        if scope not in caller.scopes:
            raise Problem(403, f"the token lacks scope {scope}")
        return caller

    return dependency


def audit_middleware(
    store: Store, limit: RateLimit
) -> Callable[[Request, Callable[[Request], Awaitable[Response]]], Awaitable[Response]]:
    """Rate-limit, answer, then record the request as an audit event."""

    async def middleware(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not limit.allow(_key(request)):
            response: Response = render(
                request,
                429,
                f"more than {limit.per_minute} requests a minute",
                {"Retry-After": "60"},
            )
        else:
            response = await call_next(request)
        if not await _record(store, request, response.status_code):
            # An unrecorded read must not leave: the audit trail is the HIS's accountability.
            return render(request, 503, "the audit log cannot be written; try again", {})
        return response

    return middleware


async def _record(store: Store, request: Request, status: int) -> bool:
    route = request.scope.get("route")
    template = getattr(route, "path", "(unrouted)")
    params = request.scope.get("path_params", {})
    subject = str(params.get("name") or params.get("id") or template)
    caller = getattr(request.state, "caller", None)
    actor = f"bridge:{caller}" if caller else "bridge:anonymous"
    reason = "ok" if status < 400 else REASONS.get(status, f"http-{status}")
    note = f"{request.method} {template} {status}"
    try:
        async with store.session() as session:
            await append(session, AuditEvent(actor, REQUEST, reason, subject[:500], note))
    except StoreUnavailable:
        log.error("bridge: cannot record the audit event for %s", note)
        return False
    return True
