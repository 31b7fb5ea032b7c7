"""Interaction timeline routes."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.interaction_schemas import (
    InteractionCreate,
    InteractionListQuery,
    InteractionOut,
    InteractionPage,
)
from chalicelib.api.responses import json_response, page_response

bp = Blueprint(__name__)


@api_route(
    bp,
    "/customers/{customer_id}/interactions",
    "POST",
    summary="Record an interaction",
    body=InteractionCreate,
    response=InteractionOut,
    status=201,
    errors=(404, 409, 422),
    headers=("Location",),
)
def create_interaction(call: Call, customer_id: str):
    fields = call.body.fields()
    interaction = wiring.interaction_service().record(customer_id, fields)
    location = f"/customers/{customer_id}/interactions/{interaction.id}"
    return json_response(InteractionOut.of(interaction), 201, {"Location": location})


@api_route(
    bp,
    "/customers/{customer_id}/interactions",
    "GET",
    summary="A customer's timeline, newest first",
    query=InteractionListQuery,
    response=InteractionPage,
    errors=(404,),
)
def list_interactions(call: Call, customer_id: str):
    q = call.query
    page = wiring.interaction_service().timeline(customer_id, q.type, q.limit, q.cursor)
    return page_response(page, InteractionOut.of)


@api_route(
    bp,
    "/customers/{customer_id}/interactions/{interaction_id}",
    "GET",
    summary="Read one interaction",
    response=InteractionOut,
    errors=(404,),
)
def get_interaction(call: Call, customer_id: str, interaction_id: str):
    return json_response(InteractionOut.of(wiring.interaction_service().get(customer_id, interaction_id)))
