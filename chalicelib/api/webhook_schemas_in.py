"""Request and response models of inbound webhooks: the sources staff register, the payloads
each kind of source may send (validated with the same field types as the API's own bodies:
one definition of a valid email, phone number, locale, price or SKU), and the deliveries."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.api.customer_schemas import Email, Locale, Phone
from chalicelib.api.interaction_schemas import (
    Channel,
    ComplaintIn,
    LineItemIn,
    MessageIn,
    OtherInteractionIn,
    PurchaseIn,
    ReturnIn,
)
from chalicelib.api.interaction_schemas import _raw_price_errors as raw_price_errors
from chalicelib.api.requests import RequestFieldErrors, load_json
from chalicelib.api.schemas import Currency, Name, Out, PageQuery, Strict, Timestamp
from chalicelib.domain import money
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.interactions import SEVERITIES, TYPES, is_too_far_in_future
from chalicelib.domain.webhook_payloads import (
    INTERACTION_CREATED,
    ORDER_CREATED,
    ORDER_REFUNDED,
    TICKET_CREATED,
)
from chalicelib.domain.webhook_signatures import SECRET_PATTERN
from chalicelib.domain.webhook_sources import KINDS, MAX_NAME_LENGTH, STATUSES
from chalicelib.errors import FieldError, Unprocessable

if TYPE_CHECKING:
    from chalicelib.domain.webhook_sources import Delivery, Source


def _no_control_characters(value: str) -> str:
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in value):
        raise ValueError("must not hold control characters")
    return value


SourceName = Annotated[Name, Field(max_length=MAX_NAME_LENGTH), AfterValidator(_no_control_characters)]
Kind = Literal[KINDS]  # type: ignore[valid-type]
Status = Literal[STATUSES]  # type: ignore[valid-type]


class WebhookSourceCreate(Strict):
    name: SourceName
    kind: Kind = Field(description="what the source sends: orders, tickets or interactions")


class WebhookSourceOut(Out):
    id: str
    name: str
    kind: Kind
    webhook_path: str = Field(description="where the source posts its deliveries: POST /webhooks/{id}")
    previous_secret_expires_at: str | None = Field(
        description="after a rotation, when the secrets before the newest stop verifying (24 hours later)"
    )
    created_at: str
    updated_at: str
    version: int

    @classmethod
    def of(cls, source: Source, now: datetime) -> dict:
        previous = source.previous_secret_expires_at(now)
        return {
            "id": source.id,
            "name": source.name,
            "kind": source.kind,
            "webhook_path": f"/webhooks/{source.id}",
            "previous_secret_expires_at": to_rfc3339(previous) if previous else None,
            "created_at": to_rfc3339(source.created_at),
            "updated_at": to_rfc3339(source.updated_at),
            "version": source.version,
        }


class WebhookSourceWithSecretOut(WebhookSourceOut):
    secret: str = Field(
        description="the signing secret (whsec_…): shown here, when made, and never again",
        pattern=SECRET_PATTERN,
    )

    @classmethod
    def of(cls, source: Source, now: datetime) -> dict:
        return WebhookSourceOut.of(source, now) | {"secret": source.secret}


class WebhookSourcePage(Out):
    items: list[WebhookSourceOut]
    next_cursor: str | None


class InboundDeliveryQuery(PageQuery):
    status: Status | None = Field(None, description="only the deliveries of this status")


class InboundDeliveryOut(Out):
    id: str = Field(description="the sender's webhook-id")
    received_at: str
    status: Status = Field(description="received (stored and queued, not yet processed), processed or failed")
    type: str = Field(description="the payload's type, e.g. order.created")
    customer_id: str | None = Field(None, description="processed: the customer it was recorded for")
    interaction_id: str | None = Field(None, description="processed: the interaction it became")
    error: str | None = Field(None, description="failed: why, in a sentence")
    processed_at: str | None = Field(None, description="when it became processed or failed")

    @classmethod
    def of(cls, d: Delivery) -> dict:
        out: dict[str, Any] = {
            "id": d.id,
            "received_at": to_rfc3339(d.received_at),
            "status": d.status,
            "type": d.type,
        }
        for name in ("customer_id", "interaction_id", "error"):
            if getattr(d, name) is not None:
                out[name] = getattr(d, name)
        if d.processed_at is not None:
            out["processed_at"] = to_rfc3339(d.processed_at)
        return out


class InboundDeliveryPage(Out):
    items: list[InboundDeliveryOut]
    next_cursor: str | None


# -- payloads ----------------------------------------------------------------------------------

# An order's or ticket's id in the sender's system: visible ASCII, as it becomes part of a key.
ExternalId = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[!-~]+$")]
CustomerId = Annotated[str, Field(min_length=1, max_length=64)]


class WebhookCustomer(Strict):
    """Who it is about: the customer with this email address (case-insensitively), else a new
    customer of these details, without marketing consent."""

    email: Email
    name: Name | None = Field(None, description="a new customer's name; default: the email's local part")
    phone: Phone | None = None
    locale: Locale | None = Field(None, description="a new customer's locale; default en")


class OrderData(Strict):
    order_id: ExternalId = Field(
        description="the order's id in the shop: one purchase however often it is sent"
    )
    customer: WebhookCustomer
    currency: Currency
    items: Annotated[list[LineItemIn], Field(min_length=1, max_length=100)]
    occurred_at: Timestamp | None = Field(None, description="when it was ordered; default: when received")

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is not None and now is not None and is_too_far_in_future(value, now):
            raise ValueError("must not be more than 5 minutes in the future")
        return value

    @model_validator(mode="after")
    def _prices_fit_currency(self):
        named = {f"items.{i}.unit_price": item.unit_price for i, item in enumerate(self.items)}
        problems = money.price_problems(self.currency, named)
        if problems:
            raise RequestFieldErrors([FieldError(field, problem) for field, problem in problems])
        return self


class RefundData(OrderData):
    order_id: ExternalId = Field(description="the refund's own id in the shop (not its order's)")
    refund_of: ExternalId = Field(description="the order_id of the order this refunds")

    @model_validator(mode="after")
    def _another_order(self):
        if self.refund_of == self.order_id:
            raise RequestFieldErrors(
                [FieldError("refund_of", "must be another order's order_id: a refund has an id of its own")]
            )
        return self


class OrderCreated(Strict):
    """An orders source's new order: a purchase on the customer's timeline."""

    type: Literal[ORDER_CREATED]  # type: ignore[valid-type]
    data: OrderData


class OrderRefunded(Strict):
    """An orders source's refund: a return of the purchase `refund_of` names."""

    type: Literal[ORDER_REFUNDED]  # type: ignore[valid-type]
    data: RefundData


class TicketData(Strict):
    ticket_id: ExternalId = Field(description="the ticket's id in the support desk: one complaint")
    customer: WebhookCustomer
    subject: Name
    severity: Literal[SEVERITIES] | None = Field(None, description="default medium")  # type: ignore[valid-type]
    channel: Channel | None = Field(None, description="default email")


class TicketCreated(Strict):
    """A tickets source's new ticket: a complaint, which opens a case (acknowledged as any)."""

    type: Literal[TICKET_CREATED]  # type: ignore[valid-type]
    data: TicketData


class _ForCustomer(Strict):
    customer: WebhookCustomer | None = Field(None, description="who it is about (or customer_id)")
    customer_id: CustomerId | None = Field(None, description="an existing customer's id (or customer)")

    @model_validator(mode="after")
    def _one_customer(self):
        given = [name for name in ("customer", "customer_id") if getattr(self, name) is not None]
        if len(given) != 1:
            problem = "is required, or customer_id" if not given else "cannot be given with customer_id"
            raise RequestFieldErrors([FieldError("customer", problem)])
        return self


class WebhookPurchaseIn(_ForCustomer, PurchaseIn):
    pass


class WebhookReturnIn(_ForCustomer, ReturnIn):
    pass


class WebhookComplaintIn(_ForCustomer, ComplaintIn):
    pass


class WebhookOtherInteractionIn(_ForCustomer, OtherInteractionIn):
    pass


class WebhookMessageIn(_ForCustomer, MessageIn):
    pass


class InteractionCreated(Strict):
    """An interactions source's interaction: the body of POST /customers/{id}/interactions,
    with `customer` or `customer_id` saying whose."""

    type: Literal[INTERACTION_CREATED]  # type: ignore[valid-type]
    data: Annotated[
        WebhookPurchaseIn
        | WebhookReturnIn
        | WebhookComplaintIn
        | WebhookOtherInteractionIn
        | WebhookMessageIn,
        Field(discriminator="type"),
    ]


_ORDER_PAYLOAD = TypeAdapter(
    Annotated[OrderCreated | OrderRefunded, Field(discriminator="type")], config=ConfigDict(defer_build=True)
)
_PAYLOADS: dict[str, Any] = {
    "orders": _ORDER_PAYLOAD,
    "tickets": TicketCreated,
    "interactions": InteractionCreated,
}

# Every kind's payload, for the document: which one a source may send is its kind's.
WebhookPayload = TypeAdapter(
    Annotated[
        OrderCreated | OrderRefunded | TicketCreated | InteractionCreated,
        Field(
            discriminator="type",
            description="A source sends its kind's payloads: orders order.created and order.refunded, "
            "tickets ticket.created, interactions interaction.created.",
        ),
    ],
    config=ConfigDict(defer_build=True),
)

# A tagged union puts the tag's value in an error's location: it names no field.
_TAGS = {ORDER_CREATED, ORDER_REFUNDED, *TYPES}


def _field_errors(error: ValidationError) -> list[FieldError]:
    found = []
    for e in error.errors(include_url=False):
        loc = [str(part) for i, part in enumerate(e["loc"]) if not (i <= 1 and part in _TAGS)]
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc.append(e["ctx"]["discriminator"].strip("'"))
            expected = e["ctx"].get("expected_tags", "")
            message = f"must be one of {expected}" if expected else "is required"
        elif e["type"] == "extra_forbidden":
            message = "is not a known field"
        elif e["type"] == "missing":
            message = "is required"
        found.append(FieldError(".".join(loc) or "body", message))
    return found


def _raw_price_errors(document: dict) -> list[FieldError]:
    """The prices of a body some other field of which was bad, judged as POST interactions
    judges them (requests.check_raw_too): every bad field is named at once."""
    data = document.get("data")
    if not isinstance(data, dict):
        return []
    as_interaction = data if document.get("type") == INTERACTION_CREATED else {**data, "type": "purchase"}
    return [FieldError(f"data.{e.field}", e.message) for e in raw_price_errors(as_interaction)]


def _unprocessable(errors: list[FieldError], kind: str) -> Unprocessable:
    fields = ", ".join(dict.fromkeys(e.field for e in errors))
    return Unprocessable(f"The body is not a payload of a source of kind {kind}: {fields}.", errors=errors)


def validate_payload(kind: str, body: bytes, now: datetime) -> dict[str, Any]:
    """The payload as it is kept: the validated JSON (emails, phones and locales normalised),
    or Unprocessable naming every field that does not fit a `kind` source's payloads."""
    try:
        document = load_json(body)
    except ValueError as error:
        raise _unprocessable([FieldError("body", str(error))], kind) from None
    if not isinstance(document, dict):
        raise _unprocessable([FieldError("body", "must be a JSON object")], kind)
    model = _PAYLOADS[kind]
    try:
        if isinstance(model, TypeAdapter):
            payload = model.validate_python(document, context={"now": now})
        else:
            payload = model.model_validate(document, context={"now": now})
    except ValidationError as error:
        errors = _field_errors(error) + _data_errors_behind_the_type(kind, document, error, now)
        named = {e.field for e in errors}
        raise _unprocessable(
            errors + [e for e in _raw_price_errors(document) if e.field not in named], kind
        ) from None
    except RequestFieldErrors as error:
        # Raised by the checks of several fields at once: all of them are under `data`.
        raise _unprocessable([FieldError(f"data.{e.field}", e.message) for e in error.errors], kind) from None
    return payload.model_dump(mode="json", exclude_none=True)


def _data_errors_behind_the_type(
    kind: str, document: dict, error: ValidationError, now: datetime
) -> list[FieldError]:
    """An orders payload whose `type` is wrong or missing is not judged further by the tagged
    union: its `data` is judged as the order (or refund, with `refund_of`) it looks like, so
    that every bad field is named at once."""
    data = document.get("data")
    tag_errors = {"union_tag_invalid", "union_tag_not_found"}
    if (
        kind != "orders"
        or not isinstance(data, dict)
        or not any(e["type"] in tag_errors for e in error.errors())
    ):
        return []
    model = RefundData if "refund_of" in data else OrderData
    try:
        model.model_validate(data, context={"now": now})
    except ValidationError as inner:
        return [FieldError(f"data.{e.field}", e.message) for e in _field_errors(inner)]
    except RequestFieldErrors as inner:
        return [FieldError(f"data.{e.field}", e.message) for e in inner.errors]
    return []
