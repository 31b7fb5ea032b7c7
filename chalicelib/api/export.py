"""GDPR export routes: everything we hold on a person (api/export_document.py), inline up to
what a Lambda response carries, or as a job of any size."""

from __future__ import annotations

import json

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.export_document import ExportOut, document_chunks
from chalicelib.api.http import Call, api_route
from chalicelib.api.jobs import JobOut, accepted
from chalicelib.api.me import erased_is_gone
from chalicelib.api.responses import JSON
from chalicelib.config import get_settings
from chalicelib.domain.jobs import EXPORT
from chalicelib.errors import ExportTooLarge

bp = Blueprint(__name__)
# Lambda returns at most 6 MB (6,291,456 bytes) from a synchronous invocation, counted as the
# JSON it returns, in which the body is an escaped string (non-ASCII as \u escapes: "ä" is 6
# bytes there). An inline export stays below 5 MiB of that, leaving room for the rest.
INLINE_LIMIT_BYTES = 5 * 1024 * 1024


def _carried_size(chunk: str) -> int:
    """The bytes `chunk` takes in Lambda's response, where the body is a JSON string."""
    return len(json.dumps(chunk)) - 2


def _inline(customer_id: str, job_route: str) -> Response:
    chunks, size = [], 0
    data = wiring.export_service().gather(customer_id)
    for chunk in document_chunks(data, get_settings().base_currency):
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
