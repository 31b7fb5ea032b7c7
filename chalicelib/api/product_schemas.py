"""Request and response models of the product catalogue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from chalicelib.api.requests import RequestFieldErrors
from chalicelib.api.schemas import Currency, MoneyIn, MoneyOut, Name, NotNull, Out, PageQuery, Sku, Strict
from chalicelib.domain import contact, money
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.products import FALLBACK_LOCALE
from chalicelib.errors import FieldError

if TYPE_CHECKING:
    from chalicelib.domain.products import Product

MAX_NAMES = 50


def _canonical_locales(value: Any) -> Any:
    if not isinstance(value, dict):
        return value  # the dict validator names the type error
    names: dict[Any, Any] = {}
    for key, name in value.items():
        try:
            locale = contact.normalize_locale(key)
        except ValueError as error:
            raise ValueError(f"{key!r} {error}") from None
        if locale in names:
            raise ValueError(f"names the language {locale} twice")
        names[locale] = name
    return names


def _has_fallback(names: dict[str, str]) -> dict[str, str]:
    if FALLBACK_LOCALE not in names:
        raise ValueError(f'must include "{FALLBACK_LOCALE}", the name shown when no other language fits')
    return names


Names = Annotated[
    dict[str, Name],
    # The bounds on the map itself, before any validator: after one, pydantic documents them as
    # a string's (minLength, maxLength), which JSON Schema ignores on an object.
    Field(min_length=1, max_length=MAX_NAMES),
    BeforeValidator(_canonical_locales),
    Field(
        description='BCP 47 language tag of registered subtags → name (1–200 characters); must include "en"',
        json_schema_extra={"required": [FALLBACK_LOCALE], "examples": [{"en": "Ceramic mug", "sv": "Mugg"}]},
    ),
    AfterValidator(_has_fallback),
]


class ProductCreate(Strict):
    sku: Sku
    names: Names
    price: MoneyIn
    currency: Currency
    active: StrictBool = True

    @model_validator(mode="after")
    def _price_fits_currency(self) -> ProductCreate:
        problems = money.price_problems(self.currency, {"price": self.price})
        if problems:
            raise RequestFieldErrors([FieldError(field, problem) for field, problem in problems])
        return self

    def fields(self) -> dict:
        return self.model_dump()


class ProductPatch(Strict):
    """Only the fields present (at least one; none may be null) change; `names` replaces the
    whole map. A price must fit the currency the product ends up with."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1})

    names: Annotated[Names, NotNull] = None  # type: ignore[assignment]
    price: Annotated[MoneyIn, NotNull] = None  # type: ignore[assignment]
    currency: Annotated[Currency, NotNull] = None  # type: ignore[assignment]
    active: Annotated[StrictBool, NotNull] = None  # type: ignore[assignment]

    @model_validator(mode="after")
    def _consistent(self) -> ProductPatch:
        errors = []
        if not self.model_fields_set:
            errors.append(FieldError("body", "names nothing to change (names, price, currency, active)"))
        if self.price is not None and self.price < 0:
            errors.append(FieldError("price", "must not be negative"))
        if errors:
            raise RequestFieldErrors(errors)
        return self

    def changes(self) -> dict:
        return {
            name: getattr(self, name) for name in type(self).model_fields if name in self.model_fields_set
        }


class ProductListQuery(PageQuery):
    active: Literal["true", "false"] | None = Field(
        None,
        description="staff: active (true) or inactive (false) products; customers see active ones "
        "only, and false from a customer is 400",
    )

    @property
    def active_filter(self) -> bool | None:
        return None if self.active is None else self.active == "true"


class ProductOut(Out):
    sku: str
    names: dict[str, str]
    price: MoneyOut = Field(description="with the currency's minor-unit digits")
    currency: str
    active: bool
    created_at: str
    updated_at: str
    version: int

    @classmethod
    def of(cls, p: Product) -> dict:
        return {
            "sku": p.sku,
            "names": dict(p.names),
            "price": money.format_money(p.price, p.currency),
            "currency": p.currency,
            "active": p.active,
            "created_at": to_rfc3339(p.created_at),
            "updated_at": to_rfc3339(p.updated_at),
            "version": p.version,
        }


class ProductPage(Out):
    items: list[ProductOut]
    next_cursor: str | None
