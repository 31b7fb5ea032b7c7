"""GDPR erasure (staff): remove a person's personal data, keep anonymous aggregates.
What is deleted, scrubbed and kept is described in chalicelib/services/erasure.py."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.api.http import Call, api_route, json_response

bp = Blueprint(__name__)


@api_route(
    bp,
    "/customers/{customer_id}/erase",
    "POST",
    summary="Erase a customer's personal data (GDPR)",
    status=204,
    errors=(404, 409),
)
def erase_customer(call: Call, customer_id: str):
    deps.erasure_service().erase(customer_id, call.actor)
    return json_response(None, 204)
