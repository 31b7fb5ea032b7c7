"""Jobs (GDPR erasure and export): staff read any job, a customer their own. The routes that
start them are in erasure.py and export.py; the work is done by events/jobs.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib import wiring
from chalicelib.api.export_document import FORMAT
from chalicelib.api.http import Call, api_route
from chalicelib.api.me import erased_is_gone
from chalicelib.api.responses import json_response
from chalicelib.api.schemas import Out
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.jobs import COMPLETED, ERASURE, Job
from chalicelib.errors import Gone

bp = Blueprint(__name__)
# How long a download link works: it is made anew each time the job is read.
DOWNLOAD_URL_SECONDS = 15 * 60


class JobResult(Out):
    """A completed export's document."""

    download_url: str = Field(description="A presigned S3 GET of the JSON document, valid 15 minutes.")
    download_url_expires_at: str
    size_bytes: int
    format: str


class JobOut(Out):
    """A job: erasure or export of one customer's data, done in the background."""

    id: str
    kind: Literal["erasure", "export"]
    status: Literal["running", "completed", "failed"]
    customer_id: str
    created_at: str
    completed_at: str | None
    failed_at: str | None
    reason: str | None = Field(description="Why the job failed (null unless it did).")
    expires_at: str = Field(description="When the job, and an export's document, are deleted.")
    result: JobResult | None = Field(description="A completed export's document; null otherwise.")

    @classmethod
    def of(cls, job: Job) -> dict:
        result = None
        if job.status == COMPLETED and job.document_key is not None:
            now = wiring.clock.now()
            result = {
                "download_url": wiring.job_service().download_url(job, DOWNLOAD_URL_SECONDS),
                "download_url_expires_at": to_rfc3339(now + timedelta(seconds=DOWNLOAD_URL_SECONDS)),
                "size_bytes": job.size_bytes,
                "format": FORMAT,
            }
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "customer_id": job.customer_id,
            "created_at": to_rfc3339(job.created_at),
            "completed_at": to_rfc3339(job.completed_at) if job.completed_at else None,
            "failed_at": to_rfc3339(job.failed_at) if job.failed_at else None,
            "reason": job.reason,
            "expires_at": to_rfc3339(job.expires_at),
            "result": result,
        }


def accepted(job: Job, location: str):
    """202: the job (new, or the one already running), and where to follow it."""
    return json_response(JobOut.of(job), 202, {"Location": location})


@api_route(bp, "/jobs/{job_id}", "GET", summary="A job (erasure or export)", response=JobOut, errors=(404,))
def get_job(call: Call, job_id: str):
    return json_response(JobOut.of(wiring.job_service().get(job_id)))


@api_route(
    bp,
    "/me/jobs/{job_id}",
    "GET",
    summary="One of my jobs (an export of my data)",
    roles=("customer",),
    response=JobOut,
    errors=(404, 410),
)
@erased_is_gone
def get_my_job(call: Call, job_id: str):
    job = wiring.job_service().get_of_customer(job_id, call.principal.subject)
    if job.kind == ERASURE and job.status == COMPLETED:
        raise Gone("This customer's personal data was erased.")
    return json_response(JobOut.of(job))
