"""The building blocks of the request and response models: base models and field types.

The models, by subject, are in the *_schemas modules beside this one; they validate requests,
shape responses and are the OpenAPI document's schemas, so the three never disagree."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, WithJsonSchema

from chalicelib.domain import money
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.products import SKU_MAX_LENGTH, SKU_PATTERN
from chalicelib.store.pagination import DEFAULT_LIMIT, MAX_LIMIT


class Out(BaseModel):
    """A response shape: documents responses in the OpenAPI document. Models are built on
    first use, not at import: every Lambda function imports app.py (cold start)."""

    model_config = ConfigDict(defer_build=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False, defer_build=True)


def checked(check: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A validator that runs a domain `check` (raising ValueError) on a string; None passes."""

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
Text = Annotated[str, Field(min_length=1, max_length=4000), AfterValidator(_not_blank)]


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

# Checked against the domain's definitions, which the stored data keeps too.
Sku = Annotated[str, Field(min_length=1, max_length=SKU_MAX_LENGTH, pattern=SKU_PATTERN.pattern)]
Currency = Annotated[str, Field(pattern=money.CURRENCY_PATTERN), AfterValidator(money.check_currency)]


class PageQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT
    cursor: Annotated[str, Field(min_length=1, max_length=2048)] | None = None


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
    merged_into: str | None = Field(
        None, description="the customer this id was merged into (a 308 redirect or a 409 of a merged id)"
    )
