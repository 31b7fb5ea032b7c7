"""GDPR export: everything we hold on a person, as one JSON document.

The document is produced in pieces (`document_chunks`), a page of the timeline, cases or audit
trail at a time, so neither way of getting it holds more than a page and what it sends:
`GET …/export` answers it inline while it fits a Lambda response, and `POST …/exports` starts a
job that streams it to S3 (services/jobs.py), whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.audit import AuditEntryOut
from chalicelib.api.http import Call, api_route
from chalicelib.api.jobs import JobOut, accepted
from chalicelib.api.me import erased_is_gone
from chalicelib.api.responses import JSON, to_json
from chalicelib.api.schemas import CaseOut, CustomerOut, InteractionOut, LoyaltyDetail, Out
from chalicelib.config import get_settings
from chalicelib.domain.clock import Deadline, to_rfc3339
from chalicelib.domain.jobs import EXPORT
from chalicelib.errors import ExportTooLarge
from chalicelib.store.pagination import MAX_LIMIT

bp = Blueprint(__name__)
FORMAT = "crm-export/1"
# Lambda returns at most 6 MB (6,291,456 bytes) from a synchronous invocation, counted as the
# JSON it returns, in which the body is an escaped string (non-ASCII as \u escapes: "ä" is 6
# bytes there). An inline export stays below 5 MiB of that, leaving room for the rest.
INLINE_LIMIT_BYTES = 5 * 1024 * 1024


class ExportOut(Out):
    """The export document (`format` names its version)."""

    format: str
    exported_at: str
    customer: CustomerOut
    loyalty: LoyaltyDetail
    interactions: list[InteractionOut]
    cases: list[CaseOut]
    audit: list[dict[str, Any]]


def _all(page: Callable[[str | None], Any], deadline: Deadline | None) -> Iterator[Any]:
    cursor = None
    while True:
        result = page(cursor)
        yield from result.items
        cursor = result.next_cursor
        if cursor is None:
            return
        if deadline is not None:
            deadline.check()


def _audit(customer_id: str, deadline: Deadline | None) -> Iterator[Any]:
    start = None
    while True:
        items, start = wiring.audit_repository().of_customer(customer_id, MAX_LIMIT, start)
        yield from items
        if start is None:
            return
        if deadline is not None:
            deadline.check()


def _array(name: str, items: Iterable[Any], first: bool = False) -> Iterator[str]:
    yield ("" if first else ", ") + f'"{name}": ['
    for index, item in enumerate(items):
        yield (", " if index else "") + to_json(item)
    yield "]"


def document_chunks(customer_id: str, deadline: Deadline | None = None) -> Iterator[str]:
    """The export document of the customer as JSON text, in pieces (NotFound before the first
    piece for an unknown customer). With a `deadline`, OutOfTime may stop it between pages."""
    customer = wiring.customer_service().get(customer_id)
    base = get_settings().base_currency
    view = wiring.loyalty_service().complete_view(customer_id)
    timeline = wiring.interaction_service()
    cases = wiring.case_service()
    head = {
        "format": FORMAT,
        "exported_at": to_rfc3339(wiring.clock.now()),
        "customer": CustomerOut.of(customer),
        "loyalty": LoyaltyDetail.of(view, base),
    }
    yield to_json(head)[:-1] + ", "
    yield from _array(
        "interactions",
        (
            InteractionOut.of(i)
            for i in _all(lambda cursor: timeline.timeline(customer_id, None, MAX_LIMIT, cursor), deadline)
        ),
        first=True,
    )
    yield from _array(
        "cases",
        (
            CaseOut.of(cases.with_whole_history(c))
            for c in _all(lambda cursor: cases.of_customer(customer_id, MAX_LIMIT, cursor), deadline)
        ),
    )
    # The person's own data, so unmasked; who changed it is part of the record.
    yield from _array(
        "audit",
        (
            AuditEntryOut.of(e)
            | {"changes": [{"field": c.field, "before": c.before, "after": c.after} for c in e.changes]}
            for e in _audit(customer_id, deadline)
        ),
    )
    yield "}"


def _carried_size(chunk: str) -> int:
    """The bytes `chunk` takes in Lambda's response, where the body is a JSON string."""
    return len(json.dumps(chunk)) - 2


def _inline(customer_id: str, job_route: str) -> Response:
    chunks, size = [], 0
    for chunk in document_chunks(customer_id):
        size += _carried_size(chunk)
        if size > INLINE_LIMIT_BYTES:
            raise ExportTooLarge(
                f"The export is larger than the {INLINE_LIMIT_BYTES:,} bytes (5 MB) a response can carry: "
                f"request it as a job with {job_route}, whose result links to the document."
            )
        chunks.append(chunk)
    return Response(body="".join(chunks), status_code=200, headers={"Content-Type": JSON})


@api_route(
    bp,
    "/customers/{customer_id}/export",
    "GET",
    summary="Everything we hold on a customer (GDPR), up to 5 MB",
    response=ExportOut,
    errors=(404, 413),
)
def export_customer(call: Call, customer_id: str):
    return _inline(customer_id, f"POST /customers/{customer_id}/exports")


@api_route(
    bp,
    "/me/export",
    "GET",
    summary="Everything we hold on me (GDPR), up to 5 MB",
    roles=("customer",),
    response=ExportOut,
    errors=(404, 410, 413),
)
@erased_is_gone
def export_me(call: Call):
    return _inline(call.principal.subject, "POST /me/exports")


@api_route(
    bp,
    "/customers/{customer_id}/exports",
    "POST",
    summary="Export everything we hold on a customer (GDPR), any size: a job",
    response=JobOut,
    status=202,
    errors=(404,),
    headers=("Location",),
)
def start_customer_export(call: Call, customer_id: str):
    job = wiring.job_service().request(EXPORT, customer_id, call.actor)
    return accepted(job, f"/jobs/{job.id}")


@api_route(
    bp,
    "/me/exports",
    "POST",
    summary="Export everything we hold on me (GDPR), any size: a job",
    roles=("customer",),
    response=JobOut,
    status=202,
    errors=(404, 410),
    headers=("Location",),
)
@erased_is_gone
def start_my_export(call: Call):
    job = wiring.job_service().request(EXPORT, call.principal.subject, call.actor)
    return accepted(job, f"/me/jobs/{job.id}")
