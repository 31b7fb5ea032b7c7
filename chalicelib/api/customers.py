"""Customer profile routes."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.api.http import Call, api_route, json_response
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.schemas import CustomerCreate, CustomerListQuery, CustomerOut, CustomerPage, CustomerPatch

bp = Blueprint(__name__)


def _customer_response(customer, status: int = 200, extra: dict | None = None):
    return json_response(CustomerOut.of(customer), status, {"ETag": etag(customer.version), **(extra or {})})


@api_route(
    bp,
    "/customers",
    "POST",
    summary="Create a customer",
    body=CustomerCreate,
    response=CustomerOut,
    status=201,
    errors=(409,),
    headers=("Location", "ETag"),
)
def create_customer(call: Call):
    customer = deps.customer_service().create(call.body.fields())
    return _customer_response(customer, 201, {"Location": f"/customers/{customer.id}"})


@api_route(
    bp,
    "/customers",
    "GET",
    summary="List customers (newest first), find by email, or search by name",
    query=CustomerListQuery,
    response=CustomerPage,
)
def list_customers(call: Call):
    q = call.query
    service = deps.customer_service()
    if q.email is not None:
        page = service.find_by_email(q.email)
    elif q.q is not None:
        page = service.search(q.q, q.limit, q.cursor)
    else:
        page = service.list_newest(q.limit, q.cursor)
    return json_response({"items": [CustomerOut.of(c) for c in page.items], "next_cursor": page.next_cursor})


@api_route(
    bp,
    "/customers/{customer_id}",
    "GET",
    summary="Read a customer",
    response=CustomerOut,
    errors=(404,),
    headers=("ETag",),
)
def get_customer(call: Call, customer_id: str):
    return _customer_response(deps.customer_service().get(customer_id))


@api_route(
    bp,
    "/customers/{customer_id}",
    "PATCH",
    summary="Change some fields of a customer",
    body=CustomerPatch,
    response=CustomerOut,
    errors=(404, 409, 412),
    headers=("ETag",),
)
def update_customer(call: Call, customer_id: str):
    customer = deps.customer_service().update(customer_id, call.body.changes(), if_match(call.headers))
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
    deps.customer_service().delete(customer_id)
    return json_response(None, 204)
