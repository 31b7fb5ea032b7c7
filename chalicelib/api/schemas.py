"""Request and response models: they validate requests, shape responses and are the OpenAPI
document's schemas, so the three never disagree."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from chalicelib.api.http import RequestFieldErrors, check_raw_too
from chalicelib.domain import contact, money
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import CHANNELS, MAX_FUTURE_SKEW, SEVERITIES, Interaction
from chalicelib.errors import FieldError
from chalicelib.store.pagination import DEFAULT_LIMIT, MAX_LIMIT

if TYPE_CHECKING:
    from chalicelib.domain.loyalty.habits import SkuHabit
    from chalicelib.services.loyalty import LoyaltyView


class Out(BaseModel):
    """A response shape: documents responses in the OpenAPI document. Models are built on
    first use, not at import: every Lambda function imports app.py (cold start)."""

    model_config = ConfigDict(defer_build=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, defer_build=True)


def _checked(check):
    def run(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("must be a string")
        try:
            return check(value)
        except ValueError as error:
            raise ValueError(str(error)) from None

    return run


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("cannot be null")
    return value


# A PATCH field that may be left out but not cleared: `None` is its default (absent), and a
# `null` sent is refused by name. The document shows the field's type without null.
NotNull = BeforeValidator(_not_null)


def _integral(value: Any) -> Any:
    # JSON Schema's integer is a number without a fractional part: 51.0 and 5.1e1 are integers
    # too, and generated clients send them. Bodies are parsed with Decimal floats.
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        if value.adjusted() >= 18:  # int() of 1e999999999 would take the machine's memory
            raise ValueError("is too large")
        return int(value)
    return value


def integer(**bounds: int) -> Any:
    """A whole number as JSON Schema means it (51 or 51.0), never a string or a boolean, within
    `bounds` (ge, gt, le, lt). The bounds go on the int itself, before the validator: after
    one, pydantic would write them into the document as they are (`le`), not as keywords."""
    return Annotated[StrictInt, Field(**bounds), BeforeValidator(_integral)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


# The length is checked on the value as sent (as the document says), then it is trimmed.
Name = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_not_blank)]
Email = Annotated[
    str,
    BeforeValidator(_checked(contact.normalize_email)),
    WithJsonSchema(
        {
            "type": "string",
            # Internationalised addresses ("åsa@exempel.se") are accepted, so not "email".
            "format": "idn-email",
            "maxLength": 254,
            "description": "one @, a local part of 1-64 visible characters, a domain of 2+ labels",
        }
    ),
]
# What contact.normalize_phone accepts: a "+", then digits (the first not 0) among spaces, dots,
# dashes, parentheses and "(0)" trunk prefixes, which are dropped. It does not count the digits
# (2-15, checked by the server): counting them around optional "(0)"s takes a regex that
# backtracks exponentially on a bad input, in every client that validates with it.
PHONE_INPUT_PATTERN = r"^\s*\+(?:[\s.()-]|\(\s*0\s*\))*[1-9][\s.()0-9-]*[0-9][\s.()-]*$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
Phone = Annotated[
    str,
    BeforeValidator(_checked(contact.normalize_phone)),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": PHONE_INPUT_PATTERN,
            "description": "E.164 with its + (2-15 digits, the first not 0); spaces, dots, dashes, "
            "parentheses and a (0) trunk prefix are removed. Returned compact (+46701234567).",
            "examples": ["+46701234567", "+46 70-123 45 67", "+44 (0)20 7946 0958"],
        }
    ),
]
PhoneOut = Annotated[str, WithJsonSchema({"type": "string", "pattern": E164_PATTERN})]
Locale = Annotated[
    str,
    BeforeValidator(_checked(contact.normalize_locale)),
    WithJsonSchema({"type": "string", "description": "BCP 47 language tag", "examples": ["sv", "fi-FI"]}),
]
Tag = Annotated[str, Field(min_length=1, max_length=40)]
Tags = Annotated[list[Tag], Field(max_length=20)]
Attributes = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=64)], Annotated[str, Field(max_length=1000)]],
    Field(max_length=50),
]


def _decimal(value: Any) -> Decimal:
    try:
        return money.to_decimal(value)
    except money.MoneyError as error:
        raise ValueError(str(error)) from None


# What money.to_decimal accepts as a string (ASCII digits; a sign, surrounding whitespace), and
# the price rules then keep: not negative (a minus only before a zero).
DECIMAL_INPUT_PATTERN = r"^\s*(\+?[0-9]+(\.[0-9]+)?|-0+(\.0+)?)\s*$"
MoneyIn = Annotated[
    Decimal,
    BeforeValidator(_decimal),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "pattern": DECIMAL_INPUT_PATTERN},
                {"type": "number", "minimum": 0, "maximum": 1_000_000_000},
            ],
            "description": "Exact decimal, 0 to 1,000,000,000, as a string or a JSON number; at "
            "most the currency's minor-unit digits.",
            "examples": ["12.90"],
        }
    ),
]
MoneyOut = Annotated[
    str, WithJsonSchema({"type": "string", "pattern": r"^-?\d+(\.\d+)?$", "examples": ["12.90"]})
]

# The years a timestamp may name: every one is stored and read back as four digits.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _timestamp(value: Any) -> datetime:
    if isinstance(value, str) and re.search(r"\d \d{2}:\d{2}$", value):
        # An unencoded "+01:00" in a query string arrives as " 01:00".
        value = value[:-6] + "+" + value[-5:]
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-03-01T09:30:00+01:00")
    out_of_range = f"must be between {to_rfc3339(EARLIEST)} and {to_rfc3339(LATEST)}"
    try:
        moment = parse_rfc3339(value.upper().replace(" ", "T"))
    except OverflowError:  # year 1 or 9999 moved past the calendar by its offset
        raise ValueError(out_of_range) from None
    except ValueError:
        raise ValueError("is not a real date and time") from None
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(out_of_range)
    return moment


Timestamp = Annotated[
    datetime,
    BeforeValidator(_timestamp),
    WithJsonSchema(
        {
            "type": "string",
            "format": "date-time",
            "description": "RFC 3339 with an offset (Z or +02:00)",
            "examples": ["2026-03-01T09:30:00+01:00"],
        }
    ),
]


# -- customers ---------------------------------------------------------------------------


class CustomerCreate(Strict):
    name: Name
    preferred_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    locale: Locale = "en"
    marketing_consent: StrictBool = False
    tags: Tags = []
    attributes: Attributes = {}

    def fields(self) -> dict:
        data = self.model_dump()
        data["tags"] = tuple(dict.fromkeys(data["tags"]))
        return data


class CustomerPatch(Strict):
    """Only the fields present change; `null` clears an optional field."""

    name: Annotated[Name, NotNull] = None  # type: ignore[assignment]
    preferred_name: Name | None = None
    email: Email | None = None
    phone: Phone | None = None
    locale: Annotated[Locale, NotNull] = None  # type: ignore[assignment]
    marketing_consent: Annotated[StrictBool, NotNull] = None  # type: ignore[assignment]
    tags: Annotated[Tags, NotNull] = None  # type: ignore[assignment]
    attributes: Annotated[Attributes, NotNull] = None  # type: ignore[assignment]

    def changes(self) -> dict:
        data = {name: getattr(self, name) for name in self.model_fields_set}
        if "tags" in data:
            data["tags"] = tuple(dict.fromkeys(data["tags"]))
        return data


class LoyaltySummary(Out):
    score: int = Field(ge=0, le=100)
    tier: Literal["bronze", "silver", "gold", "platinum"]
    recency_days: int | None = Field(description="whole days since the last purchase; null without one")
    frequency: int = Field(description="purchases counted")
    monetary: MoneyOut = Field(description="net spend in the stage's base currency")
    updated_at: str | None = Field(description="when the aggregates last changed")

    @classmethod
    def of(cls, view: LoyaltyView, base_currency: str) -> dict:
        return {
            "score": view.score.score,
            "tier": view.score.tier,
            "recency_days": view.score.recency_days,
            "frequency": view.aggregates.purchase_count,
            "monetary": money.format_money(
                view.aggregates.net_spend.get(base_currency, Decimal(0)), base_currency
            ),
            "updated_at": to_rfc3339(view.updated_at) if view.updated_at else None,
        }


class PurchaseHabit(Out):
    sku: str
    name: str
    times_bought: int
    quantity: int
    first_purchase_at: str
    last_purchase_at: str
    mean_interval_days: float | None
    next_expected_at: str | None

    @classmethod
    def of(cls, h: SkuHabit) -> dict:
        return {
            "sku": h.sku,
            "name": h.name,
            "times_bought": h.times_bought,
            "quantity": h.quantity,
            "first_purchase_at": to_rfc3339(h.first_purchase_at),
            "last_purchase_at": to_rfc3339(h.last_purchase_at),
            "mean_interval_days": round(h.mean_interval_days, 2)
            if h.mean_interval_days is not None
            else None,
            "next_expected_at": to_rfc3339(h.next_expected_at) if h.next_expected_at else None,
        }


class HabitPage(Out):
    items: list[PurchaseHabit]
    next_cursor: str | None


class LoyaltyDetail(LoyaltySummary):
    recency_score: int = Field(ge=1, le=5)
    frequency_score: int = Field(ge=1, le=5)
    monetary_score: int = Field(ge=1, le=5)
    net_spend: dict[str, MoneyOut]
    returns: int
    sku_count: int = Field(description="how many SKUs the customer has bought (one habit each)")
    purchase_habits: list[PurchaseHabit] = Field(
        description=(
            "next expected purchase first, then SKUs bought once by their purchase; the first 100 "
            "of sku_count in GET /customers/{customer_id}/loyalty (GET /customers/{customer_id}/habits "
            "lists them all), every one in an export"
        )
    )

    @classmethod
    def of(cls, view: LoyaltyView, base_currency: str) -> dict:
        return LoyaltySummary.of(view, base_currency) | {
            "recency_score": view.score.recency_score,
            "frequency_score": view.score.frequency_score,
            "monetary_score": view.score.monetary_score,
            "net_spend": {c: money.format_money(a, c) for c, a in sorted(view.aggregates.net_spend.items())},
            "returns": view.aggregates.return_count,
            "sku_count": view.aggregates.sku_count,
            "purchase_habits": [PurchaseHabit.of(h) for h in sorted(view.habits, key=lambda h: h.order)],
        }


class CustomerOut(Out):
    id: str
    name: str
    preferred_name: str | None
    email: str | None
    phone: PhoneOut | None
    locale: str
    marketing_consent: bool
    tags: list[str]
    attributes: dict[str, str]
    created_at: str
    updated_at: str
    version: int
    loyalty: LoyaltySummary | None = Field(
        None,
        description="in GET /customers/{customer_id} and GET /customers?tier=; computed as of the request",
    )

    @classmethod
    def of(cls, c: Customer, loyalty: dict | None = None) -> dict:
        extra = {"loyalty": loyalty} if loyalty is not None else {}
        return extra | {
            "id": c.id,
            "name": c.name,
            "preferred_name": c.preferred_name,
            "email": c.email,
            "phone": c.phone,
            "locale": c.locale,
            "marketing_consent": c.marketing_consent,
            "tags": list(c.tags),
            "attributes": dict(c.attributes),
            "created_at": to_rfc3339(c.created_at),
            "updated_at": to_rfc3339(c.updated_at),
            "version": c.version,
        }


class PageQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(min_length=1, max_length=2048)] | None = None


class CustomerListQuery(PageQuery):
    email: Email | None = None
    q: Annotated[str, Field(min_length=2, max_length=200)] | None = Field(
        None, description="name search: at least one word of 2 or more letters or digits"
    )
    tier: Literal["bronze", "silver", "gold", "platinum"] | None = Field(
        None, description="customers of this loyalty tier, highest score first"
    )

    @model_validator(mode="after")
    def _one_filter(self) -> CustomerListQuery:
        given = [name for name in ("email", "q", "tier") if getattr(self, name) is not None]
        if len(given) > 1:
            raise RequestFieldErrors(
                [FieldError(name, f"cannot be combined with {given[0]}") for name in given[1:]]
            )
        return self


class CustomerPage(Out):
    items: list[CustomerOut]
    next_cursor: str | None


# -- interactions ------------------------------------------------------------------------


class LineItemIn(Strict):
    sku: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")]
    name: Name
    quantity: integer(gt=0, le=1_000_000)
    unit_price: MoneyIn


Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Note = Annotated[str, Field(max_length=4000)]


Direction = Literal["inbound", "outbound"]


class _InteractionBase(Strict):
    channel: Channel
    direction: Direction = "inbound"
    occurred_at: Timestamp | None = None
    note: Note | None = None

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        now = (info.context or {}).get("now")
        if value is not None and now is not None and value > now + MAX_FUTURE_SKEW:
            raise ValueError("must not be more than 5 minutes in the future")
        return value

    def fields(self) -> dict:
        return {name: getattr(self, name) for name in type(self).model_fields if name != "items"} | (
            {"items": [item.model_dump() for item in self.items]} if hasattr(self, "items") else {}
        )


class _MoneyInteraction(_InteractionBase):
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
    items: Annotated[list[LineItemIn], Field(min_length=1, max_length=100)]

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, value: str) -> str:
        if not money.is_currency(value):
            raise ValueError("is not an ISO 4217 currency code")
        return value

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
    errors = []
    for i, price in enumerate(prices):
        try:
            money.parse_price(price, currency)  # also "must not be negative"
        except money.MoneyError as error:
            errors.append(FieldError(f"items.{i}.unit_price", str(error)))
    return errors


def _raw_price_errors(data: Any) -> list[FieldError]:
    """The price rules on a body some other field of which was bad (see http.check_raw_too):
    only prices that are numbers, of a known currency, are judged."""
    if not isinstance(data, dict) or data.get("type") not in ("purchase", "return"):
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
    direction: Literal["inbound", "outbound"]
    text: str | None = Field(None, description="message")
    case_id: str | None = Field(None, description="message: the case it belongs to")

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
        if i.type == "complaint":
            out["severity"] = i.severity
            out["subject"] = i.subject
        if i.type == "message":
            out["subject"] = i.subject
            out["text"] = i.text
            if i.case_id:
                out["case_id"] = i.case_id
        return out


class InteractionListQuery(PageQuery):
    type: Literal["purchase", "return", "complaint", "inquiry", "feedback", "visit", "message"] | None = None


class InteractionPage(Out):
    items: list[InteractionOut]
    next_cursor: str | None


# -- misc --------------------------------------------------------------------------------


class Health(Out):
    status: Literal["ok"]


class ProblemFieldError(Out):
    field: str
    message: str


class Problem(Out):
    type: str
    title: str
    status: int
    detail: str
    instance: str = Field(description="the path of the request")
    errors: list[ProblemFieldError] | None = None


# -- cases -------------------------------------------------------------------------------

CaseStatus = Literal["open", "acknowledged", "in_progress", "resolved", "closed", "reopened"]
Severity = Literal["low", "medium", "high", "critical"]


class CaseHistoryOut(Out):
    at: str
    by: str
    # "from"/"to" are Python keywords: the names are set through aliases.
    from_: str | None = Field(None, alias="from")
    to: str | None
    note: str | None

    @classmethod
    def of(cls, h) -> dict:
        return {
            "at": to_rfc3339(h.at),
            "by": h.by,
            "from": h.from_status,
            "to": h.to_status,
            "note": h.note,
        }


class CaseHistoryPage(Out):
    items: list[CaseHistoryOut]
    next_cursor: str | None


class CaseOut(Out):
    id: str
    customer_id: str
    interaction_id: str
    subject: str
    severity: Severity
    status: CaseStatus
    assignee: str | None
    opened_at: str
    first_response_due: str
    resolution_due: str
    escalation_level: int
    contact_status: str | None = Field(
        description="how the customer was told: acknowledged_by_email, no_email_address, customer_deleted"
    )
    acknowledged_at: str | None
    resolution: str | None
    satisfaction: int | None
    closed_reason: Literal["resolved", "customer_deleted"] | None = Field(
        description="why the case is closed: resolved (closed by staff after its resolution) or "
        "customer_deleted (closed when its customer was deleted); null while it is not closed"
    )
    history: list[CaseHistoryOut] = Field(
        description="the latest entries of the history, oldest first: up to 20, fewer when they "
        "are long (32 KB at most); all of them in an export, and in GET /cases/{case_id}/history"
    )
    history_count: int = Field(description="how many entries the whole history has")
    version: int

    @classmethod
    def of(cls, c) -> dict:
        def ts(value):
            return to_rfc3339(value) if value else None

        return {
            "id": c.id,
            "customer_id": c.customer_id,
            "interaction_id": c.interaction_id,
            "subject": c.subject,
            "severity": c.severity,
            "status": c.status,
            "assignee": c.assignee,
            "opened_at": ts(c.opened_at),
            "first_response_due": ts(c.first_response_due),
            "resolution_due": ts(c.resolution_due),
            "escalation_level": c.escalation_level,
            "contact_status": c.contact_status,
            "acknowledged_at": ts(c.acknowledged_at),
            "resolution": c.resolution,
            "satisfaction": c.satisfaction,
            "closed_reason": c.closed_reason,
            "history": [CaseHistoryOut.of(h) for h in c.history],
            "history_count": c.history_count,
            "version": c.version,
        }


class CasePage(Out):
    items: list[CaseOut]
    next_cursor: str | None


class CaseListQuery(PageQuery):
    status: CaseStatus | None = None
    severity: Severity | None = None
    assignee: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    due_before: Timestamp | None = None


Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_not_blank)]


class CasePatch(Strict):
    """Assign, change status and/or add a note; at least one field. `null` unassigns."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    status: Annotated[CaseStatus, NotNull] = None  # type: ignore[assignment]
    assignee: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    note: Text | None = None
    resolution: Text | None = None
    satisfaction: integer(ge=1, le=5) | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CasePatch:
        errors = []
        if not self.model_fields_set:
            errors.append(FieldError("body", "names nothing to change (status, assignee, note)"))
        if self.status == "resolved" and not self.resolution:
            errors.append(FieldError("resolution", "is required to resolve a case"))
        if self.resolution is not None and self.status != "resolved":
            errors.append(FieldError("resolution", "is only given with status resolved"))
        if self.satisfaction is not None and self.status != "closed":
            errors.append(FieldError("satisfaction", "is only given with status closed"))
        if errors:
            raise RequestFieldErrors(errors)
        return self

    def changes(self) -> dict:
        return {name: getattr(self, name) for name in self.model_fields_set}
