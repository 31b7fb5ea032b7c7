"""GDPR export: everything we hold on a person, as one JSON document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.api.audit import AuditEntryOut
from chalicelib.api.http import Call, api_route, json_response
from chalicelib.api.me import erased_is_gone
from chalicelib.api.schemas import CaseOut, CustomerOut, InteractionOut, LoyaltyDetail, Out
from chalicelib.config import get_settings
from chalicelib.domain.clock import to_rfc3339
from chalicelib.store.pagination import MAX_LIMIT

bp = Blueprint(__name__)
FORMAT = "crm-export/1"


class ExportOut(Out):
    """The export document (`format` names its version)."""

    format: str
    exported_at: str
    customer: CustomerOut
    loyalty: LoyaltyDetail
    interactions: list[InteractionOut]
    cases: list[CaseOut]
    audit: list[dict[str, Any]]


def _all(page: Callable[[str | None], Any]) -> Iterator[Any]:
    cursor = None
    while True:
        result = page(cursor)
        yield from result.items
        cursor = result.next_cursor
        if cursor is None:
            return


def _audit(customer_id: str) -> Iterator[Any]:
    start = None
    while True:
        items, start = deps.audit_repository().of_customer(customer_id, MAX_LIMIT, start)
        yield from items
        if start is None:
            return


def export_document(customer_id: str) -> dict:
    customer = deps.customer_service().get(customer_id)
    base = get_settings().base_currency
    view = deps.loyalty_service().complete_view(customer_id)
    timeline = deps.interaction_service()
    cases = deps.case_service()
    return {
        "format": FORMAT,
        "exported_at": to_rfc3339(deps.clock.now()),
        "customer": CustomerOut.of(customer),
        "loyalty": LoyaltyDetail.of(view, base),
        "interactions": [
            InteractionOut.of(i)
            for i in _all(lambda cursor: timeline.timeline(customer_id, None, MAX_LIMIT, cursor))
        ],
        "cases": [
            CaseOut.of(c) for c in _all(lambda cursor: cases.of_customer(customer_id, MAX_LIMIT, cursor))
        ],
        # The person's own data, so unmasked; who changed it is part of the record.
        "audit": [
            AuditEntryOut.of(e)
            | {"changes": [{"field": c.field, "before": c.before, "after": c.after} for c in e.changes]}
            for e in _audit(customer_id)
        ],
    }


@api_route(
    bp,
    "/customers/{customer_id}/export",
    "GET",
    summary="Everything we hold on a customer (GDPR)",
    response=ExportOut,
    errors=(404,),
)
def export_customer(call: Call, customer_id: str):
    return json_response(export_document(customer_id))


@api_route(
    bp,
    "/me/export",
    "GET",
    summary="Everything we hold on me (GDPR)",
    roles=("customer",),
    response=ExportOut,
    errors=(404, 410),
)
@erased_is_gone
def export_me(call: Call):
    return json_response(export_document(call.principal.subject))
