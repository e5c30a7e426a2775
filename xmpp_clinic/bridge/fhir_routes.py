"""``/fhir``: Communication, DocumentReference, Bundle searchsets, CapabilityStatement (I.6).

JSON only (``application/fhir+json``); refusals are ``OperationOutcome``. Searches take
the HIS's patient number (``patient``), visit number (``encounter``), ``_count`` and
``_offset``; only documented threads have FHIR resources.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from fhir.resources.R4B.resource import Resource

from xmpp_clinic.bridge import fhir
from xmpp_clinic.bridge.cases import Case, CaseBook
from xmpp_clinic.bridge.problems import FHIR_TYPE, Problem, documented
from xmpp_clinic.bridge.tokens import Caller
from xmpp_clinic.clock import utcnow
from xmpp_clinic.threads import ThreadInfo, ThreadService

if TYPE_CHECKING:
    from xmpp_clinic.bridge.api import BridgeContext

FHIR_ID = r"^[A-Za-z0-9\-.]{1,64}$"
Token = Annotated[str | None, Query(max_length=64, pattern=r"^[^|]*$")]
Offset = Annotated[int, Query(alias="_offset", ge=0, le=1_000_000)]


class FhirJSON(JSONResponse):
    media_type = FHIR_TYPE


def _schema(kind: str) -> dict[int | str, dict[str, Any]]:
    schema = {
        "type": "object",
        "required": ["resourceType"],
        "properties": {"resourceType": {"type": "string", "enum": [kind]}},
    }
    return {200: {"description": kind, "content": {FHIR_TYPE: {"schema": schema}}}}


OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["resourceType", "issue"],
    "properties": {
        "resourceType": {"type": "string", "enum": ["OperationOutcome"]},
        "issue": {"type": "array", "items": {"type": "object"}},
    },
}


def install(
    app: FastAPI, ctx: "BridgeContext", records: Depends, threads: ThreadService, cases: CaseBook
) -> None:
    """Add the FHIR routes to ``app``."""
    errors = documented(401, 403, 404, 422, 429, 503, fhir=True)
    default_count = min(50, ctx.page_limit)
    Count = Annotated[int, Query(alias="_count", ge=1, le=ctx.page_limit)]

    async def documented_threads(
        patient: str | None, encounter: str | None
    ) -> list[tuple[ThreadInfo, Case | None]]:
        bound = await cases.bindings()
        out = []
        for info in await threads.list():
            case = bound.get(info.name)
            if patient is not None and (case is None or case.patient != patient):
                continue
            if encounter is not None and (case is None or case.visit != encounter):
                continue
            if await ctx.copies.documented(info.name):
                out.append((info, case))
        return out

    async def communications(info: ThreadInfo, case: Case | None, base: str) -> list[Resource]:
        return [
            fhir.communication(info.name, case, m, base) for m in await ctx.copies.copies(info.name)
        ]

    async def document(info: ThreadInfo, case: Case | None) -> Resource:
        copies = await ctx.copies.copies(info.name)
        return fhir.document_reference(info.name, info.title, case, copies)

    def bundle(request: Request, found: Sequence[Resource], count: int, offset: int) -> FhirJSON:
        page = found[offset : offset + count]
        next_url = None
        if offset + count < len(found):
            next_url = str(request.url.include_query_params(_offset=offset + count, _count=count))
        base = str(request.base_url).rstrip("/") + "/fhir"
        return FhirJSON(fhir.as_json(fhir.searchset(base, page, next_url)))

    async def by_id(resource_id: str) -> tuple[ThreadInfo, Case | None, int | None]:
        """The thread (and message sequence, for a Communication) an id names."""
        for info, case in await documented_threads(None, None):
            ref = fhir.thread_id(info.name)
            if resource_id == ref:
                return info, case, None
            rest = resource_id.removeprefix(ref + ".")
            if rest != resource_id and rest.isdigit():
                return info, case, int(rest)
        raise Problem(404, "no such resource")

    @app.get(
        "/fhir/metadata",
        response_class=FhirJSON,
        responses=_schema("CapabilityStatement"),
        tags=["fhir"],
    )
    async def metadata() -> FhirJSON:
        """The CapabilityStatement (public, as FHIR expects)."""
        return FhirJSON(fhir.as_json(fhir.capability_statement(utcnow())))

    @app.get(
        "/fhir/Communication",
        response_class=FhirJSON,
        responses={**_schema("Bundle"), **errors},
        tags=["fhir"],
    )
    async def search_communication(
        request: Request,
        caller: Annotated[Caller, records],
        patient: Token = None,
        encounter: Token = None,
        thread: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
        count: Count = default_count,
        offset: Offset = 0,
    ) -> FhirJSON:
        """Communications (one per documented message) as a searchset Bundle."""
        found: list[Resource] = []
        for info, case in await documented_threads(patient, encounter):
            if thread is None or info.name == thread:
                found.extend(await communications(info, case, str(request.base_url)))
        return bundle(request, found, count, offset)

    @app.get(
        "/fhir/Communication/{id}",
        response_class=FhirJSON,
        responses={**_schema("Communication"), **errors},
        tags=["fhir"],
    )
    async def read_communication(
        request: Request,
        id: Annotated[str, Path(pattern=FHIR_ID)],
        caller: Annotated[Caller, records],
    ) -> FhirJSON:
        """One documented message."""
        info, case, seq = await by_id(id)
        for resource in await communications(info, case, str(request.base_url)):
            if seq is not None and resource.id == id:
                return FhirJSON(fhir.as_json(resource))
        raise Problem(404, "no such resource")

    @app.get(
        "/fhir/DocumentReference",
        response_class=FhirJSON,
        responses={**_schema("Bundle"), **errors},
        tags=["fhir"],
    )
    async def search_document_reference(
        request: Request,
        caller: Annotated[Caller, records],
        patient: Token = None,
        encounter: Token = None,
        count: Count = default_count,
        offset: Offset = 0,
    ) -> FhirJSON:
        """Thread transcripts (text/plain, ISiK metadata) as a searchset Bundle."""
        found = [await document(i, c) for i, c in await documented_threads(patient, encounter)]
        return bundle(request, found, count, offset)

    @app.get(
        "/fhir/DocumentReference/{id}",
        response_class=FhirJSON,
        responses={**_schema("DocumentReference"), **errors},
        tags=["fhir"],
    )
    async def read_document_reference(
        id: Annotated[str, Path(pattern=FHIR_ID)], caller: Annotated[Caller, records]
    ) -> FhirJSON:
        """One thread's transcript."""
        info, case, seq = await by_id(id)
        if seq is not None:
            raise Problem(404, "no such resource")
        return FhirJSON(fhir.as_json(await document(info, case)))
