"""The bridge's HTTP API: threads, their documented messages and audit trail (I.6, II.2).

Read-only, bearer tokens with scopes (``records:read``, ``audit:read``), cursor paging
with a page limit, problem details for every refusal, OpenAPI at ``/openapi.json``.
FHIR lives in :mod:`.fhir_routes`; auth, rate limit and the per-request audit event in
:mod:`.guard`.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from xmpp_clinic import __version__
from xmpp_clinic.archive import audit
from xmpp_clinic.bridge import fhir_routes
from xmpp_clinic.bridge.cases import Case, CaseBook
from xmpp_clinic.bridge.guard import RateLimit, audit_middleware, scoped
from xmpp_clinic.bridge.problems import (
    Problem,
    ProblemDetails,
    documented,
    on_http,
    on_invalid,
    on_problem,
    on_store_down,
    on_unreadable,
)
from xmpp_clinic.bridge.records import CopiesUnreadable, DocumentationCopies
from xmpp_clinic.bridge.tokens import Caller, TokenBook
from xmpp_clinic.clock import as_utc
from xmpp_clinic.store import Store, StoreUnavailable
from xmpp_clinic.threads import ThreadInfo, ThreadNotFound, ThreadService

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
ThreadName = Annotated[str, Path(pattern=NAME_PATTERN, description="The thread's name.")]


@dataclass(frozen=True)
class BridgeContext:
    """What the API reads from: the store, the documentation copies, and its limits."""

    store: Store
    copies: DocumentationCopies
    page_limit: int = 100
    rate_per_minute: int = 600


class CaseOut(BaseModel):
    visit: str
    patient: str
    ward: str
    admitted_at: datetime | None
    discharged_at: datetime | None


class ThreadOut(BaseModel):
    name: str
    title: str
    kind: str
    created_at: datetime
    documented: bool
    case: CaseOut | None


class ThreadPage(BaseModel):
    items: list[ThreadOut]
    next_cursor: str | None


class AttachmentOut(BaseModel):
    """A file of a message: ``url`` serves it (stored); a gap says why it is not there."""

    url: str
    title: str
    media_type: str
    size: int
    sha1: str
    status: str
    reason: str


class MessageOut(BaseModel):
    seq: int
    stanza_id: str
    sender: str
    at: datetime
    body: str
    attachments: list[AttachmentOut]
    gap: bool
    parts: int
    missing_parts: list[int]
    parts_missing: int


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    action: str
    reason: str
    subject: str
    note: str


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


def _case(case: Case | None) -> CaseOut | None:
    if case is None:
        return None
    return CaseOut(
        visit=case.visit,
        patient=case.patient,
        ward=case.ward,
        admitted_at=case.admitted_at,
        discharged_at=case.discharged_at,
    )


def _matches(
    info: ThreadInfo,
    case: Case | None,
    filters: dict[str, str | None],
    span: tuple[datetime | None, datetime | None],
) -> bool:
    for key, wanted in filters.items():
        if wanted is not None and (case is None or getattr(case, key) != wanted):
            return False
    since, until = span
    created = as_utc(info.created_at)
    return not (since and created < as_utc(since)) and not (until and created > as_utc(until))


def create_app(ctx: BridgeContext) -> FastAPI:
    """The bridge's ASGI application over ``ctx``."""
    app = FastAPI(
        title="xmpp-clinic HIS bridge",
        version=__version__,
        description="Documented care threads for the hospital information system (I.6).",
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(CopiesUnreadable, on_unreadable)
    app.add_exception_handler(StoreUnavailable, on_store_down)
    app.middleware("http")(audit_middleware(ctx.store, RateLimit(ctx.rate_per_minute)))
    tokens, cases = TokenBook(ctx.store), CaseBook(ctx.store)
    threads = ThreadService(ctx.store, user_domains=())
    records = Depends(scoped(tokens, "records:read"))
    audits = Depends(scoped(tokens, "audit:read"))
    Limit = Annotated[int, Query(ge=1, le=ctx.page_limit, description="Page size.")]
    default_page = min(50, ctx.page_limit)
    errors = documented(401, 403, 404, 422, 429, 503)

    async def thread_out(info: ThreadInfo, case: Case | None) -> ThreadOut:
        return ThreadOut(
            name=info.name,
            title=info.title,
            kind=info.kind,
            created_at=info.created_at,
            documented=await ctx.copies.documented(info.name),
            case=_case(case),
        )

    async def known(name: str) -> ThreadInfo:
        try:
            return await threads.get(name)
        except ThreadNotFound:
            raise Problem(404, "no such thread") from None

    @app.get("/threads", response_model=ThreadPage, responses=errors, tags=["threads"])
    async def list_threads(
        caller: Annotated[Caller, records],
        case: Annotated[
            str | None, Query(max_length=64, description="Visit number (PV1-19).")
        ] = None,
        patient: Annotated[
            str | None, Query(max_length=64, description="Patient number (PID-3).")
        ] = None,
        ward: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[datetime | None, Query(description="Created at or after.")] = None,
        until: Annotated[datetime | None, Query(description="Created at or before.")] = None,
        cursor: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
        limit: Limit = default_page,
    ) -> ThreadPage:
        """Threads, filtered by case, patient, ward and creation time; paged by name."""
        bound = await cases.bindings()
        filters = {"visit": case, "patient": patient, "ward": ward}
        found = [
            t
            for t in await threads.list()
            if (cursor is None or t.name > cursor)
            and _matches(t, bound.get(t.name), filters, (since, until))
        ]
        page = found[:limit]
        items = [await thread_out(t, bound.get(t.name)) for t in page]
        return ThreadPage(items=items, next_cursor=page[-1].name if len(found) > limit else None)

    @app.get("/threads/{name}", response_model=ThreadOut, responses=errors, tags=["threads"])
    async def get_thread(name: ThreadName, caller: Annotated[Caller, records]) -> ThreadOut:
        """One thread and the case it is bound to."""
        return await thread_out(await known(name), await cases.case_of(name))

    @app.get(
        "/threads/{name}/messages", response_model=MessagePage, responses=errors, tags=["threads"]
    )
    async def thread_messages(
        name: ThreadName,
        caller: Annotated[Caller, records],
        after: Annotated[int, Query(ge=0, le=2**53, description="Sequence cursor.")] = 0,
        limit: Limit = default_page,
    ) -> MessagePage:
        """The thread's documented messages in sequence; gaps and missing parts marked (II.2)."""
        await known(name)
        if not await ctx.copies.documented(name):
            raise Problem(404, "the thread is not documented")
        copies = list(await ctx.copies.copies(name, after_seq=after, limit=limit + 1))
        page = copies[:limit]
        items = [
            MessageOut(
                seq=m.seq,
                stanza_id=m.stanza_id,
                sender=m.sender,
                at=m.at,
                body=m.body,
                attachments=[
                    AttachmentOut(
                        url=a.url,
                        title=a.title,
                        media_type=a.media_type,
                        size=a.size,
                        sha1=a.sha1.hex(),
                        status=a.status,
                        reason=a.reason,
                    )
                    for a in m.attachments
                ],
                gap=m.gap,
                parts=m.parts,
                missing_parts=list(m.missing_parts),
                parts_missing=m.parts_missing,
            )
            for m in page
        ]
        more = len(copies) > limit
        return MessagePage(items=items, next_cursor=str(page[-1].seq) if more else None)

    @app.get(
        "/threads/{name}/copies/{position}/attachments/{number}",
        response_class=Response,
        responses={
            200: {
                "description": "The stored file (its media type, as sniffed when stored)",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
            },
            **errors,
        },
        tags=["threads"],
    )
    async def attachment_file(
        name: ThreadName,
        position: Annotated[int, Path(ge=1, le=2**53, description="The copy's position.")],
        number: Annotated[int, Path(ge=1, le=1000, description="Which file of the copy.")],
        caller: Annotated[Caller, records],
    ) -> Response:
        """One attachment of a documented message, decrypted (I.6); a gap is 404 naming why."""
        await known(name)
        found = await ctx.copies.attachment(name, position, number)
        if found is None:
            raise Problem(404, "no such attachment")
        info, content = found
        if not info.stored:
            raise Problem(404, f"the attachment is not documented ({info.reason or info.status})")
        return Response(content, media_type=info.media_type or "application/octet-stream")

    @app.get("/threads/{name}/audit", response_model=AuditPage, responses=errors, tags=["audit"])
    async def thread_audit(
        name: ThreadName,
        caller: Annotated[Caller, audits],
        after: Annotated[int, Query(ge=0, le=2**53, description="Sequence cursor.")] = 0,
        limit: Limit = default_page,
    ) -> AuditPage:
        """The thread's audit trail (who did what, when; never content)."""
        async with ctx.store.session() as session:
            rows = await audit.events(session, after=after, limit=limit + 1, subject=name)
        page = rows[:limit]
        items = [
            AuditOut(
                seq=r.seq,
                at=r.at,
                actor=r.actor,
                action=r.action,
                reason=r.reason,
                subject=r.subject,
                note=r.note,
            )
            for r in page
        ]
        return AuditPage(items=items, next_cursor=str(page[-1].seq) if len(rows) > limit else None)

    fhir_routes.install(app, ctx, records, threads, cases)
    _publish_problem_schemas(app)
    return app


def _publish_problem_schemas(app: FastAPI) -> None:
    """``/openapi.json`` with the problem-details and OperationOutcome schemas it refers to."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["ProblemDetails"] = ProblemDetails.model_json_schema()
            schemas["OperationOutcomeOut"] = fhir_routes.OUTCOME_SCHEMA
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
