"""Errors as RFC 9457 problem details (API) or FHIR OperationOutcome (``/fhir``) (I.6).

Every refusal names what was wrong (the parameter, the scope) and nothing about the
records it protects. One place maps errors to responses; routes raise :class:`Problem`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

PROBLEM_TYPE = "application/problem+json"
FHIR_TYPE = "application/fhir+json"
_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    422: "Invalid parameter",
    429: "Too many requests",
    503: "Store unavailable",
}
# FHIR issue types (OperationOutcome.issue.code) for the statuses we send.
_FHIR_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    422: "invalid",
    429: "throttled",
    503: "transient",
}
REASONS = {
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "not-allowed",
    422: "bad-request",
    429: "rate-limited",
    503: "unavailable",
}


class ProblemDetails(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class Problem(Exception):
    """A refusal with an HTTP status and one sentence for the caller."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers or {}


def documented(*statuses: int, fhir: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the problem statuses a route may answer with."""
    media = FHIR_TYPE if fhir else PROBLEM_TYPE
    ref = "#/components/schemas/" + ("OperationOutcomeOut" if fhir else "ProblemDetails")
    return {
        status: {"description": _TITLES[status], "content": {media: {"schema": {"$ref": ref}}}}
        for status in statuses
    }


def _outcome(status: int, detail: str) -> dict[str, Any]:
    code = _FHIR_CODES.get(status, "processing")
    issue = {"severity": "error", "code": code, "diagnostics": detail}
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def render(request: Request, status: int, detail: str, headers: dict[str, str]) -> JSONResponse:
    if request.url.path.startswith("/fhir"):
        return JSONResponse(_outcome(status, detail), status, headers, media_type=FHIR_TYPE)
    body = ProblemDetails(title=_TITLES.get(status, "Error"), status=status, detail=detail)
    return JSONResponse(body.model_dump(), status, headers, media_type=PROBLEM_TYPE)


async def on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return render(request, exc.status, exc.detail, exc.headers)


async def on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    status = exc.status_code if exc.status_code in _TITLES else 400
    detail = "no such resource" if status == 404 else str(exc.detail)
    return render(request, status, detail, dict(exc.headers or {}))


async def on_unreadable(request: Request, exc: Exception) -> JSONResponse:
    """Documentation that cannot be verified is not served in part (II.2)."""
    return render(request, 503, f"the documentation cannot be read: {exc}", {})


async def on_store_down(request: Request, exc: Exception) -> JSONResponse:
    """The store cannot be read: fail closed with a retryable answer (I.12)."""
    return render(request, 503, "the store is unavailable; try again", {"Retry-After": "30"})


async def on_invalid(request: Request, exc: Exception) -> JSONResponse:
    """A malformed parameter: the first one named, with what it must be (nothing echoed)."""
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(p) for p in first.get("loc", ()))
    return render(request, 422, f"{where}: {first.get('msg', 'invalid')}", {})
