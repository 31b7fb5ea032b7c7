"""Request and response models of the batch writes: up to 100 bodies of a single route in one
request, each validated and written on its own, a result for each in input order."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, GetJsonSchemaHandler
from pydantic_core import core_schema as cs

from chalicelib.api.customer_schemas import CustomerCreate
from chalicelib.api.interaction_schemas import InteractionCreate
from chalicelib.api.schemas import Out, Problem, Strict

MAX_ITEMS = 100


class _DocumentedAs:
    """An item taken as any JSON value (each is validated on its own, into its own result), and
    documented as the single route's body or, truthfully, anything else (answered with a 400
    result, the request itself being accepted)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def __get_pydantic_json_schema__(self, schema: cs.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        model = self._model
        if hasattr(model, "core_schema"):  # a TypeAdapter
            body = handler(model.core_schema)
        else:
            model.model_rebuild()
            body = handler(model.__pydantic_core_schema__)
        other = {"description": "any other value: the request is taken, this item's result is a 400"}
        return {"anyOf": [body, other]}


def _items(model: Any, description: str) -> Any:
    return Annotated[
        list[Annotated[Any, _DocumentedAs(model)]],
        Field(min_length=1, max_length=MAX_ITEMS, description=description),
    ]


class CustomerBatch(Strict):
    items: _items(CustomerCreate, "1 to 100 bodies of POST /customers, written in this order")  # type: ignore[valid-type]


class InteractionBatch(Strict):
    items: _items(  # type: ignore[valid-type]
        InteractionCreate,
        "1 to 100 bodies of POST /customers/{customer_id}/interactions, written in this order. A "
        "return's `purchase_id` may be `#<index>`: the purchase an earlier item of this batch created.",
    )


ITEM_PROBLEM = (
    "the problem+json the single route would have answered for this body (without the batch's "
    "`items.<index>.` prefix in `errors[].field`); `instance` is the batch's path with the item's "
    "JSON pointer, e.g. `/customers/batch#/items/3`"
)


class CustomerBatchResult(Out):
    index: int = Field(description="the item's position in `items`, from 0")
    status: Literal[201, 400, 409, 422, 503] = Field(
        description="201 created; else the single route's status for this body (503: busy or out of "
        "time, nothing written: send it again in a new request)"
    )
    id: str | None = Field(None, description="201: the new customer's id")
    possible_duplicates: list[str] | None = Field(
        None, description="201: as POST /customers answers it (earlier items of the batch included)"
    )
    problem: Problem | None = Field(None, description=ITEM_PROBLEM)


class InteractionBatchResult(Out):
    index: int = Field(description="the item's position in `items`, from 0")
    status: Literal[201, 400, 404, 409, 422, 503] = Field(
        description="201 recorded; else the single route's status for this body (404: the customer "
        "was deleted while the batch ran; 503: busy or out of time, nothing written: send it again in "
        "a new request)"
    )
    id: str | None = Field(None, description="201: the interaction's id")
    problem: Problem | None = Field(None, description=ITEM_PROBLEM)


class CustomerBatchResults(Out):
    results: list[CustomerBatchResult] = Field(description="one per item, in input order")


class InteractionBatchResults(Out):
    results: list[InteractionBatchResult] = Field(description="one per item, in input order")
