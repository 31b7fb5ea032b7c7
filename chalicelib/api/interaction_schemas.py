"""Request and response models of the interactions of a customer's timeline."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationInfo, field_validator, model_validator

from chalicelib.api.requests import RequestFieldErrors, check_raw_too
from chalicelib.api.schemas import (
    Currency,
    MoneyIn,
    MoneyOut,
    Name,
    Out,
    PageQuery,
    Sku,
    Strict,
    Timestamp,
    integer,
)
from chalicelib.domain import money
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.interactions import (
    CHANNELS,
    DIRECTIONS,
    MONEY_TYPES,
    SEVERITIES,
    TYPES,
    Interaction,
    is_too_far_in_future,
)
from chalicelib.errors import FieldError


class LineItemIn(Strict):
    sku: Sku
    name: Name
    quantity: integer(gt=0, le=1_000_000)
    unit_price: MoneyIn


Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Note = Annotated[str, Field(max_length=4000)]
Direction = Literal[DIRECTIONS]  # type: ignore[valid-type]


class _InteractionBase(Strict):
    channel: Channel
    direction: Direction = "inbound"
    occurred_at: Timestamp | None = None
    note: Note | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is not None and now is not None and is_too_far_in_future(value, now):
            raise ValueError("must not be more than 5 minutes in the future")
        return value

    def fields(self) -> dict:
        return {name: getattr(self, name) for name in type(self).model_fields if name != "items"} | (
            {"items": [item.model_dump() for item in self.items]} if hasattr(self, "items") else {}
        )


class _MoneyInteraction(_InteractionBase):
    currency: Currency
    items: Annotated[list[LineItemIn], Field(min_length=1, max_length=100)]

    @model_validator(mode="after")
    def _prices_fit_currency(self):
        errors = _price_errors(self.currency, [item.unit_price for item in self.items])
        if errors:
            raise RequestFieldErrors(errors)
        return self


class PurchaseIn(_MoneyInteraction):
    type: Literal["purchase"]


class ReturnIn(_MoneyInteraction):
    type: Literal["return"]
    purchase_id: Annotated[str, Field(min_length=1, max_length=64)]


class ComplaintIn(_InteractionBase):
    type: Literal["complaint"]
    severity: Literal[SEVERITIES]  # type: ignore[valid-type]
    subject: Name


class OtherInteractionIn(_InteractionBase):
    type: Literal["inquiry", "feedback", "visit"]


class MessageIn(_InteractionBase):
    """A message sent to or received from the customer (an email, a letter, a chat message)."""

    type: Literal["message"]
    subject: Name
    text: Annotated[str, Field(min_length=1, max_length=10000)]


InteractionCreate = TypeAdapter(
    Annotated[
        PurchaseIn | ReturnIn | ComplaintIn | OtherInteractionIn | MessageIn, Field(discriminator="type")
    ],
    config=ConfigDict(defer_build=True),
)


def _price_errors(currency: str, prices: list[Any]) -> list[FieldError]:
    named = {f"items.{i}.unit_price": price for i, price in enumerate(prices)}
    return [FieldError(field, problem) for field, problem in money.price_problems(currency, named)]


def _raw_price_errors(data: Any) -> list[FieldError]:
    """The price rules on a body some other field of which was bad (see requests.check_raw_too):
    only prices that are numbers, of a known currency, are judged."""
    if not isinstance(data, dict) or data.get("type") not in MONEY_TYPES:
        return []
    currency, items = data.get("currency"), data.get("items")
    if not isinstance(currency, str) or not money.is_currency(currency) or not isinstance(items, list):
        return []
    prices = [item.get("unit_price") if isinstance(item, dict) else None for item in items]
    errors = []
    for error in _price_errors(currency, prices):
        price = prices[int(error.field.split(".")[1])]
        if isinstance(price, str | int | Decimal) and not isinstance(price, bool):
            errors.append(error)
    return errors


check_raw_too(InteractionCreate, _raw_price_errors)


class LineItemOut(Out):
    sku: str
    name: str
    quantity: int
    unit_price: MoneyOut


class InteractionOut(Out):
    id: str
    customer_id: str
    type: str
    channel: str
    occurred_at: str
    created_at: str
    note: str | None = None
    currency: str | None = Field(None, description="purchase and return")
    items: list[LineItemOut] | None = Field(None, description="purchase and return")
    amount: MoneyOut | None = Field(None, description="purchase and return: sum of quantity × unit_price")
    purchase_id: str | None = Field(None, description="return: the purchase it returns")
    severity: str | None = Field(None, description="complaint")
    subject: str | None = Field(None, description="complaint and message")
    direction: Direction
    text: str | None = Field(None, description="message")
    case_id: str | None = Field(None, description="message: the case it belongs to")
    campaign_id: str | None = Field(None, description="message: the campaign that sent it")
    run_id: str | None = Field(None, description="message: the campaign run that sent it")
    order_id: str | None = Field(
        None, description="purchase and return from an orders webhook: the shop's id of the order or refund"
    )
    merged_from: str | None = Field(
        None,
        description="moved here by a merge: the id of the customer it was recorded on; null if never moved",
    )

    @classmethod
    def of(cls, i: Interaction) -> dict:
        out: dict[str, Any] = {
            "id": i.id,
            "customer_id": i.customer_id,
            "type": i.type,
            "channel": i.channel,
            "occurred_at": to_rfc3339(i.occurred_at),
            "created_at": to_rfc3339(i.created_at),
            "note": i.note,
            "direction": i.direction,
            "merged_from": i.merged_from,
        }
        if i.currency:
            out["currency"] = i.currency
            out["items"] = [
                {
                    "sku": item.sku,
                    "name": item.name,
                    "quantity": item.quantity,
                    "unit_price": money.format_money(item.unit_price, i.currency),
                }
                for item in i.items
            ]
            out["amount"] = money.format_money(i.amount, i.currency)
        if i.purchase_id:
            out["purchase_id"] = i.purchase_id
        if i.order_id:
            out["order_id"] = i.order_id
        if i.type == "complaint":
            out["severity"] = i.severity
            out["subject"] = i.subject
        if i.type == "message":
            out["subject"] = i.subject
            out["text"] = i.text
            if i.case_id:
                out["case_id"] = i.case_id
            if i.campaign_id:
                out["campaign_id"] = i.campaign_id
                out["run_id"] = i.run_id
        return out


class InteractionListQuery(PageQuery):
    type: Literal[TYPES] | None = None  # type: ignore[valid-type]


class InteractionPage(Out):
    items: list[InteractionOut]
    next_cursor: str | None
