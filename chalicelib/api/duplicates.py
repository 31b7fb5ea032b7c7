"""Duplicate detection routes: a customer's likely duplicates, and two customers recorded as
different people."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.duplicate_schemas import SCORING, DuplicateOut, DuplicatePage, NotDuplicateIn
from chalicelib.api.http import Call, api_route
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery

bp = Blueprint(__name__)


@api_route(
    bp,
    "/customers/{customer_id}/duplicates",
    "GET",
    summary="A customer's likely duplicates, best first, with the evidence for each",
    query=PageQuery,
    response=DuplicatePage,
    errors=(404,),
    description=SCORING,
)
def list_duplicates(call: Call, customer_id: str):
    page = wiring.duplicate_service().for_customer(customer_id, call.query.limit, call.query.cursor)
    return page_response(page, DuplicateOut.of)


@api_route(
    bp,
    "/customers/{customer_id}/not-duplicate",
    "POST",
    summary="Record that two customers are different people, never to be suggested as duplicates again",
    body=NotDuplicateIn,
    status=204,
    errors=(404, 422),
    description="Both customers must exist (404 names `customer_id` when it is the body's). Recording "
    "the same pair again, either way round, answers 204 as well.",
)
def record_not_duplicate(call: Call, customer_id: str):
    wiring.duplicate_service().record_not_duplicate(customer_id, call.body.customer_id, call.actor)
    return json_response(None, 204)
