"""Batch writes: many bodies of POST /customers, or of POST /customers/{id}/interactions, in one
request. Each item is validated and written on its own, in input order, as the single route
would (one bad item fails only itself), and answered in `results` with the single route's
status and, if it failed, its problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.batch_schemas import (
    CustomerBatch,
    CustomerBatchResults,
    InteractionBatch,
    InteractionBatchResults,
)
from chalicelib.api.customer_schemas import CustomerCreate
from chalicelib.api.http import Call, api_route, validation_context
from chalicelib.api.interaction_schemas import InteractionCreate
from chalicelib.api.requests import validate
from chalicelib.api.responses import json_response, problem_body
from chalicelib.domain import attempts, ids
from chalicelib.domain.clock import Deadline
from chalicelib.domain.interactions import Interaction
from chalicelib.errors import CrmError, FieldError, ServiceBusy, Unprocessable

bp = Blueprint(__name__)

# A return's purchase_id naming an earlier item of the same batch: "#<index>".
ITEM_REFERENCE = "#"

# API Gateway answers 504 after 29 s whatever the function still does: items not begun within
# this many seconds of the batch's start are answered 503, unwritten, for the client to send again.
TIME_BUDGET_S = 20.0

BATCH = (
    "Each item is validated and written on its own, in input order, with the single route's rules, "
    "and answered in `results` (same order) with the single route's status: one bad item fails "
    "only itself. `problem.errors[].field` names the item's own fields (`email`, "
    "`items.0.quantity`), not prefixed with `items.<index>.`: `index` says which item. A 503 item "
    "(busy, or not begun because the batch ran out of its 20 s) wrote nothing: send it again in a "
    "new request (with a new `Idempotency-Key`: the same key replays this answer). 400 naming "
    "`items` if it is missing, not a list, empty or longer than 100."
)

# A result's problem lists at most this many fields: one bad item of a 1 MB batch could otherwise
# name thousands (each of 5,000 attributes), past Lambda's 6 MB answer and the 400 KB its
# Idempotency-Key's stored answer may hold.
MAX_ITEM_ERRORS = 20

_OUT_OF_TIME = (
    "The batch ran out of time before this item: nothing was written for it. Send it again in a new request."
)


def _each(call: Call, model: Any, write: Callable[[int, Any], dict]) -> Response:
    deadline = Deadline(TIME_BUDGET_S)
    results: list[dict] = []
    for index, item in enumerate(call.body.items):
        # Each item draws its ids apart from the others: a keyed retry rebuilds the same ones.
        with attempts.part(index):
            try:
                if index and deadline.remaining() <= 0:
                    raise ServiceBusy(_OUT_OF_TIME)
                body = validate(model, item, validation_context())
                results.append({"index": index, "status": 201, **write(index, body)})
            except CrmError as error:
                answer = _bounded(problem_body(error, f"{call.path}#/items/{index}"))
                results.append({"index": index, "status": error.status, "problem": answer})
    return json_response({"results": results})


def _bounded(problem: dict) -> dict:
    errors = problem.get("errors", [])
    if len(errors) <= MAX_ITEM_ERRORS:
        return problem
    fields = len({e["field"] for e in errors})
    detail = f"The item has {fields} invalid fields; errors lists the first {MAX_ITEM_ERRORS}."
    return problem | {"detail": detail, "errors": errors[:MAX_ITEM_ERRORS]}


@api_route(
    bp,
    "/customers/batch",
    "POST",
    summary="Create up to 100 customers, each on its own",
    body=CustomerBatch,
    response=CustomerBatchResults,
    description=BATCH + " An item whose email another customer (or an earlier item) has is 409.",
)
def create_customers(call: Call):
    service = wiring.customer_service()
    later_ids = _ids_of_items(len(call.body.items))

    def write(index: int, body: CustomerCreate) -> dict:
        created = service.create_noting_duplicates(
            body.fields(), call.actor, not_before=frozenset(later_ids[index + 1 :])
        )
        return {
            "id": created.customer.id,
            "possible_duplicates": [m.customer_id for m in created.possible_duplicates],
        }

    return _each(call, CustomerCreate, write)


def _ids_of_items(count: int) -> list[str]:
    """In the retry of a keyed batch whose first attempt committed, the ids its items create:
    a later item, written already, is not an earlier one's duplicate."""
    if not attempts.repeating():
        return []
    return [found for i in range(count) if (found := ids.first_id_of_part(ids.CUSTOMER, i))]


@api_route(
    bp,
    "/customers/{customer_id}/interactions/batch",
    "POST",
    summary="Record up to 100 interactions of a customer, each on its own",
    body=InteractionBatch,
    response=InteractionBatchResults,
    errors=(404,),
    description=BATCH
    + " An unknown customer is 404 for the whole request (a merged one 409 `merged_into`). A return's "
    "`purchase_id` may be `#<index>`, the purchase created by that earlier item of the batch.",
)
def create_interactions(call: Call, customer_id: str):
    wiring.customer_service().get(customer_id, consistent=True)
    service = wiring.interaction_service()
    created: dict[int, Interaction] = {}

    def write(index: int, body: Any) -> dict:
        fields = _with_purchase_of_batch(body.fields(), index, created)
        created[index] = service.record(customer_id, fields)
        return {"id": created[index].id}

    return _each(call, InteractionCreate, write)


def _with_purchase_of_batch(fields: dict, index: int, created: dict[int, Interaction]) -> dict:
    reference = fields.get("purchase_id") or ""
    if fields.get("type") != "return" or not reference.startswith(ITEM_REFERENCE):
        return fields
    position = reference.removeprefix(ITEM_REFERENCE)
    purchase = created.get(int(position)) if position.isdecimal() and int(position) < index else None
    if purchase is None or purchase.type != "purchase":
        raise Unprocessable(
            "A return's purchase_id of the form #<index> names an earlier item of this batch that "
            "created a purchase.",
            errors=[FieldError("purchase_id", "names no earlier item of this batch that created a purchase")],
        )
    return fields | {"purchase_id": purchase.id}
