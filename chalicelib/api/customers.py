"""Customer profile routes."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.customer_schemas import (
    CustomerCreate,
    CustomerCreated,
    CustomerListQuery,
    CustomerOut,
    CustomerPage,
    CustomerPatch,
)
from chalicelib.api.http import Call, api_route
from chalicelib.api.loyalty_schemas import HabitPage, LoyaltyDetail, LoyaltySummary, PurchaseHabit
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.recommendation_schemas import RECOMMENDATIONS, RecommendationOut, RecommendationPage
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery
from chalicelib.config import get_settings

bp = Blueprint(__name__)


def _customer_response(
    customer, status: int = 200, extra: dict | None = None, extra_body: dict | None = None
):
    body = CustomerOut.of(customer) | (extra_body or {})
    return json_response(body, status, {"ETag": etag(customer.version), **(extra or {})})


@api_route(
    bp,
    "/customers",
    "POST",
    summary="Create a customer",
    body=CustomerCreate,
    response=CustomerCreated,
    status=201,
    errors=(409,),
    headers=("Location", "ETag"),
)
def create_customer(call: Call):
    created = wiring.customer_service().create_noting_duplicates(call.body.fields(), call.actor)
    customer = created.customer
    flagged = {"possible_duplicates": [m.customer_id for m in created.possible_duplicates]}
    return _customer_response(customer, 201, {"Location": f"/customers/{customer.id}"}, flagged)


@api_route(
    bp,
    "/customers",
    "GET",
    summary="List customers (newest first), find by email, or search by name",
    query=CustomerListQuery,
    response=CustomerPage,
    description=(
        "Without a filter: every customer, newest first. `email`, `q` and `tier` exclude one "
        "another: a request gives at most one of them, else 400 naming each one after the first "
        "(in the order email, q, tier: `cannot be combined with email`). `email` finds at most "
        "one customer, in one page: `limit` and `cursor` do not apply to it. A `cursor` is only "
        "valid on the list it came from, with the same filter and value (400 otherwise)."
    ),
)
def list_customers(call: Call):
    q = call.query
    service = wiring.customer_service()
    if q.email is not None:
        page = service.find_by_email(q.email)
    elif q.q is not None:
        page = service.search(q.q, q.limit, q.cursor)
    elif q.tier is not None:
        return _tier_page(q.tier, q.limit, q.cursor)
    else:
        page = service.list_newest(q.limit, q.cursor)
    return page_response(page, CustomerOut.of)


def _tier_page(tier: str, limit: int, cursor: str | None):
    page = wiring.loyalty_service().by_tier(tier, limit, cursor)
    customers = wiring.customer_service().get_many([view.customer_id for view in page.items])
    base = get_settings().base_currency
    items = [
        CustomerOut.of(customers[view.customer_id], LoyaltySummary.of(view, base))
        for view in page.items
        if view.customer_id in customers
    ]
    return json_response({"items": items, "next_cursor": page.next_cursor})


@api_route(
    bp,
    "/customers/{customer_id}",
    "GET",
    summary="Read a customer, with their loyalty as of now",
    response=CustomerOut,
    errors=(404,),
    headers=("ETag",),
)
def get_customer(call: Call, customer_id: str):
    customer, view = wiring.loyalty_service().customer_with_loyalty(customer_id)
    loyalty = LoyaltySummary.of(view, get_settings().base_currency)
    return _customer_response(customer, extra_body={"loyalty": loyalty})


@api_route(
    bp,
    "/customers/{customer_id}",
    "PATCH",
    summary="Change some fields of a customer",
    body=CustomerPatch,
    response=CustomerOut,
    errors=(404, 409, 412, 422),
    headers=("ETag",),
)
def update_customer(call: Call, customer_id: str):
    customer = wiring.customer_service().update(
        customer_id, call.body.changes(), if_match(call.headers), call.actor
    )
    return _customer_response(customer)


@api_route(
    bp,
    "/customers/{customer_id}",
    "DELETE",
    summary="Delete a customer and their timeline",
    status=204,
    errors=(404, 409),
)
def delete_customer(call: Call, customer_id: str):
    wiring.customer_service().delete(customer_id, call.actor)
    return json_response(None, 204)


@api_route(
    bp,
    "/customers/{customer_id}/loyalty",
    "GET",
    summary="A customer's loyalty and purchase habits",
    response=LoyaltyDetail,
    errors=(404,),
)
def get_loyalty(call: Call, customer_id: str):
    view = wiring.loyalty_service().detail(customer_id)
    return json_response(LoyaltyDetail.of(view, get_settings().base_currency))


@api_route(
    bp,
    "/customers/{customer_id}/habits",
    "GET",
    summary="All of a customer's purchase habits, one per SKU, in SKU order",
    query=PageQuery,
    response=HabitPage,
    errors=(404,),
)
def list_habits(call: Call, customer_id: str):
    page = wiring.loyalty_service().habits(customer_id, call.query.limit, call.query.cursor)
    return page_response(page, PurchaseHabit.of)


@api_route(
    bp,
    "/customers/{customer_id}/recommendations",
    "GET",
    summary="What to offer a customer: repurchases due, products bought together, or the most bought",
    query=PageQuery,
    response=RecommendationPage,
    errors=(404,),
    description=RECOMMENDATIONS,
)
def customer_recommendations(call: Call, customer_id: str):
    page = wiring.recommendation_service().for_customer(customer_id, call.query.limit, call.query.cursor)
    return page_response(page, RecommendationOut.of)
