"""Self-service routes (role `customer`): the customer is the token's subject, never a path or
body field, so no request can name another customer's data."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Literal

from chalice import Blueprint
from pydantic import Field

from chalicelib import wiring
from chalicelib.api.case_schemas import CaseOut, Severity
from chalicelib.api.customer_schemas import CustomerDetailsPatch, CustomerOut
from chalicelib.api.email_confirmations import PendingEmailOut
from chalicelib.api.http import Call, api_route
from chalicelib.api.interaction_schemas import InteractionListQuery, InteractionOut, InteractionPage
from chalicelib.api.loyalty_schemas import LoyaltySummary
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.recommendation_schemas import RECOMMENDATIONS, RecommendationOut, RecommendationPage
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import Name, Out, PageQuery, Strict, integer
from chalicelib.config import get_settings
from chalicelib.domain import products
from chalicelib.errors import Gone, NotFound

bp = Blueprint(__name__)
ROLE = ("customer",)


class MePatch(CustomerDetailsPatch):
    """What customers may change themselves; anything else is an unknown field (400)."""


class MyCaseOut(Out):
    """A case as its customer sees it: no staff assignments or internal notes."""

    id: str
    subject: str
    severity: str
    status: str
    opened_at: str
    first_response_due: str
    resolution_due: str
    acknowledged_at: str | None
    resolution: str | None
    satisfaction: int | None
    closed_reason: str | None

    @classmethod
    def of(cls, case) -> dict:
        full = CaseOut.of(case)
        return {name: full[name] for name in cls.model_fields}


class MyCasePage(Out):
    items: list[MyCaseOut]
    next_cursor: str | None


class OrderLine(Strict):
    # Any sku: one that is not a product is named as such (422), whatever its shape.
    sku: Annotated[str, Field(min_length=1, max_length=products.SKU_MAX_LENGTH)]
    quantity: integer(gt=0, le=1000)


class OrderIn(Strict):
    items: Annotated[list[OrderLine], Field(min_length=1, max_length=50)]
    channel: Literal["web", "mobile"]

    def lines(self) -> list[products.OrderLine]:
        return [products.OrderLine(line.sku, line.quantity) for line in self.items]


class MyComplaintIn(Strict):
    """A complaint the customer files themselves (staff record complaints as interactions)."""

    subject: Name
    description: Annotated[str, Field(min_length=1, max_length=4000)]
    severity: Severity = "medium"
    channel: Literal["web", "mobile"] = "web"


def erased_is_gone(view: Callable) -> Callable:
    """Self-service of an erased customer answers 410 Gone instead of 404; of a customer
    merged into another (a token issued before the merge), it is the survivor's. The
    tombstone and the alias are read only when the view found nothing, so other requests pay
    nothing for them."""

    @functools.wraps(view)
    def guarded(call: Call, **path_params: str):
        try:
            return view(call, **path_params)
        except NotFound:
            subject = call.principal.subject
            if wiring.erasure_service().was_erased(subject):
                raise Gone("This customer's personal data was erased.") from None
            survivor = wiring.merge_repository().resolve(subject)
            if survivor is None:
                raise
        as_survivor = replace(call, principal=replace(call.principal, subject=survivor))
        return view(as_survivor, **path_params)

    return guarded


@api_route(
    bp,
    "/me",
    "GET",
    summary="My profile, with my loyalty",
    roles=ROLE,
    response=CustomerOut,
    errors=(404, 410),
    headers=("ETag",),
)
@erased_is_gone
def get_me(call: Call):
    customer, view = wiring.loyalty_service().customer_with_loyalty(call.principal.subject)
    loyalty = LoyaltySummary.of(view, get_settings().base_currency)
    return json_response(CustomerOut.of(customer, loyalty), 200, {"ETag": etag(customer.version)})


@api_route(
    bp,
    "/me",
    "PATCH",
    summary="Change my details (a new email address waits for its confirmation: 202)",
    roles=ROLE,
    body=MePatch,
    response=CustomerOut,
    errors=(404, 409, 410, 412, 429),
    headers=("ETag",),
    also=(
        (
            202,
            PendingEmailOut,
            "Changed, except the new email address: a link to confirm it was sent there, "
            "whoever has it. The profile as it is now, with `pending_email`.",
        ),
    ),
)
@erased_is_gone
def update_me(call: Call):
    customer, pending = wiring.email_change_service().change_my_details(
        call.principal.subject, call.body.changes(), if_match(call.headers), call.actor
    )
    if pending is not None:
        return json_response(
            PendingEmailOut.of_pending(customer, pending), 202, {"ETag": etag(customer.version)}
        )
    return json_response(CustomerOut.of(customer), 200, {"ETag": etag(customer.version)})


@api_route(
    bp,
    "/me/interactions",
    "GET",
    summary="My timeline, newest first",
    roles=ROLE,
    query=InteractionListQuery,
    response=InteractionPage,
    errors=(404, 410),
)
@erased_is_gone
def my_interactions(call: Call):
    q = call.query
    page = wiring.interaction_service().timeline(call.principal.subject, q.type, q.limit, q.cursor)
    return page_response(page, InteractionOut.of)


@api_route(
    bp,
    "/me/interactions/{interaction_id}",
    "GET",
    summary="One entry of my timeline",
    roles=ROLE,
    response=InteractionOut,
    errors=(404, 410),
)
@erased_is_gone
def my_interaction(call: Call, interaction_id: str):
    return json_response(
        InteractionOut.of(wiring.interaction_service().get(call.principal.subject, interaction_id))
    )


@api_route(
    bp,
    "/me/orders",
    "POST",
    summary="Order products or services from the catalogue",
    roles=ROLE,
    body=OrderIn,
    response=InteractionOut,
    status=201,
    errors=(404, 410, 422),
    headers=("Location",),
)
@erased_is_gone
def place_order(call: Call):
    purchase = wiring.order_service().place(call.principal.subject, call.body.lines(), call.body.channel)
    return json_response(InteractionOut.of(purchase), 201, {"Location": f"/me/interactions/{purchase.id}"})


@api_route(
    bp,
    "/me/complaints",
    "POST",
    summary="File a complaint (a case opens for it)",
    roles=ROLE,
    body=MyComplaintIn,
    response=InteractionOut,
    status=201,
    errors=(404, 410),
    headers=("Location",),
)
@erased_is_gone
def file_complaint(call: Call):
    c = call.body
    complaint = wiring.interaction_service().record(
        call.principal.subject,
        {
            "type": "complaint",
            "channel": c.channel,
            "severity": c.severity,
            "subject": c.subject,
            "note": c.description,
        },
    )
    return json_response(InteractionOut.of(complaint), 201, {"Location": f"/me/interactions/{complaint.id}"})


@api_route(
    bp,
    "/me/cases",
    "GET",
    summary="My complaint cases, newest first",
    roles=ROLE,
    query=PageQuery,
    response=MyCasePage,
    errors=(404, 410),
)
@erased_is_gone
def my_cases(call: Call):
    page = wiring.case_service().of_customer(call.principal.subject, call.query.limit, call.query.cursor)
    return page_response(page, MyCaseOut.of)


@api_route(
    bp,
    "/me/cases/{case_id}",
    "GET",
    summary="One of my cases",
    roles=ROLE,
    response=MyCaseOut,
    errors=(404, 410),
)
@erased_is_gone
def my_case(call: Call, case_id: str):
    case = wiring.case_service().get(case_id)
    if case.customer_id != call.principal.subject:
        # Another customer's case is answered exactly like a case that does not exist.
        raise NotFound(f"No case has the id {case_id!r}.")
    return json_response(MyCaseOut.of(case))


@api_route(
    bp,
    "/me/recommendations",
    "GET",
    summary="What I might buy next: repurchases due, products bought together, or the most bought",
    roles=ROLE,
    query=PageQuery,
    response=RecommendationPage,
    errors=(404, 410),
    description=RECOMMENDATIONS,
)
@erased_is_gone
def my_recommendations(call: Call):
    page = wiring.recommendation_service().for_customer(
        call.principal.subject, call.query.limit, call.query.cursor
    )
    return page_response(page, RecommendationOut.of)
