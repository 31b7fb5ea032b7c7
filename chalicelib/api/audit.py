"""The audit trail of a customer (staff)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.responses import page_response
from chalicelib.api.schemas import Out, PageQuery
from chalicelib.domain.audit import AuditEntry, mask
from chalicelib.domain.clock import to_rfc3339

bp = Blueprint(__name__)


class AuditActorOut(Out):
    subject: str
    role: str


class AuditChangeOut(Out):
    field: str
    before: Any
    after: Any


class AuditEntryOut(Out):
    id: str
    entity: str
    entity_id: str
    action: str
    actor: AuditActorOut
    route: str
    at: str
    changes: list[AuditChangeOut]

    @classmethod
    def of(cls, e: AuditEntry) -> dict:
        return {
            "id": e.id,
            "entity": e.entity,
            "entity_id": e.entity_id,
            "action": e.action,
            "actor": {"subject": e.actor.subject, "role": e.actor.role},
            "route": e.actor.route,
            "at": to_rfc3339(e.at),
            "changes": [
                {"field": c.field, "before": mask(c.field, c.before), "after": mask(c.field, c.after)}
                for c in e.changes
            ],
        }


class AuditPage(Out):
    items: list[AuditEntryOut]
    next_cursor: str | None


@api_route(
    bp,
    "/customers/{customer_id}/audit",
    "GET",
    summary="Who changed what of a customer and their cases, newest first (personal data masked);"
    " also after the customer was deleted or erased",
    query=PageQuery,
    response=AuditPage,
    errors=(404,),
)
def customer_audit(call: Call, customer_id: str):
    # A deleted or erased customer's trail too: its personal values masked, as every entry's
    # are (erasure scrubs them as well).
    page = wiring.audit_service().of_customer(customer_id, call.query.limit, call.query.cursor)
    return page_response(page, AuditEntryOut.of)
