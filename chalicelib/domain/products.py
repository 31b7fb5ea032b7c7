"""Catalogue products: what a customer can order, at an exact price, and how an order is priced
from them. No storage."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.interactions import LineItem

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
SKU_MAX_LENGTH = 64
EDITABLE_FIELDS = ("names", "price", "currency", "active")
# Every product has a name in this language: the one shown when none fits the customer's.
FALLBACK_LOCALE = "en"


@dataclass(frozen=True)
class Product:
    """A catalogue entry. `price` is exact, with the currency's minor-unit digits."""

    sku: str
    names: dict[str, str]
    price: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    active: bool = True
    version: int = 0

    def with_changes(self, changes: dict, at: datetime) -> Product:
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        return replace(self, **changes, updated_at=at)

    def name_in(self, locale: str) -> str:
        """The name in the locale's language, else the fallback language's."""
        return self.names.get(locale.split("-")[0]) or self.names[FALLBACK_LOCALE]


def is_sku(value: str) -> bool:
    return len(value) <= SKU_MAX_LENGTH and bool(SKU_PATTERN.match(value))


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int


class OrderRefused(ValueError):
    """An order the catalogue cannot fill; `problems` are (field, problem) pairs."""

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message)
        self.problems = problems


def price_order(
    lines: Sequence[OrderLine], catalogue: Mapping[str, Product], locale: str
) -> tuple[str, tuple[LineItem, ...]]:
    """The currency and line items of a purchase of `lines` at the catalogue's prices, named in
    the customer's language. Only active products are sold, and one order is paid in one
    currency (OrderRefused otherwise)."""
    if not lines:
        raise OrderRefused("An order names at least one product.", [("items", "must not be empty")])
    not_sold = [
        (f"items.{i}.sku", "is not a product we sell")
        for i, line in enumerate(lines)
        if line.sku not in catalogue or not catalogue[line.sku].active
    ]
    if not_sold:
        raise OrderRefused("The order names products that are not in the catalogue.", not_sold)
    currencies = {catalogue[line.sku].currency for line in lines}
    if len(currencies) > 1:
        raise OrderRefused(
            "One order is paid in one currency.", [("items", f"mixes currencies {sorted(currencies)}")]
        )
    (currency,) = currencies
    items = tuple(
        LineItem(line.sku, catalogue[line.sku].name_in(locale), line.quantity, catalogue[line.sku].price)
        for line in lines
    )
    for item in items:
        money.parse_price(item.unit_price, currency, at_most=None)  # the catalogue's own price
    return currency, items
