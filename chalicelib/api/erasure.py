"""GDPR erasure (staff): remove a person's personal data, keep anonymous aggregates. The request
starts a job (what is deleted, scrubbed and kept: chalicelib/services/erasure.py)."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.jobs import JobOut, accepted
from chalicelib.domain.jobs import ERASURE

bp = Blueprint(__name__)


@api_route(
    bp,
    "/customers/{customer_id}/erase",
    "POST",
    summary="Erase a customer's personal data (GDPR): a job",
    response=JobOut,
    status=202,
    errors=(404,),
    headers=("Location",),
)
def erase_customer(call: Call, customer_id: str):
    job = wiring.job_service().request(ERASURE, customer_id, call.actor)
    return accepted(job, f"/jobs/{job.id}")
