"""Self-service orders: a customer buys from the catalogue, and the purchase goes on their
timeline at the catalogue's prices."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from typing import Protocol

from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.products import OrderLine, OrderRefused, Product, price_order
from chalicelib.errors import FieldError, Unprocessable


class Customers(Protocol):
    def get(self, customer_id: str) -> Customer: ...


class Catalogue(Protocol):
    def get_many(self, skus: Iterable[str]) -> dict[str, Product]: ...


class Timeline(Protocol):
    def written_by_earlier_attempt(self, customer_id: str) -> Interaction | None: ...

    def record(self, customer_id: str, fields: dict) -> Interaction: ...


class OrderService:
    def __init__(self, customers: Customers, catalogue: Catalogue, timeline: Timeline) -> None:
        self._customers = customers
        self._catalogue = catalogue
        self._timeline = timeline

    def place(self, customer_id: str, lines: Sequence[OrderLine], channel: str) -> Interaction:
        """Record the customer's purchase of `lines` (NotFound for an unknown customer, 422 for
        products not sold or of several currencies), named in the customer's language."""
        customer = self._customers.get(customer_id)
        # A retry after a lost answer: the order stands even if the catalogue changed since.
        placed = self._timeline.written_by_earlier_attempt(customer.id)
        if placed is not None:
            return placed
        catalogue = self._catalogue.get_many([line.sku for line in lines])
        try:
            currency, items = price_order(lines, catalogue, customer.locale)
        except OrderRefused as refused:
            raise Unprocessable(
                str(refused), errors=[FieldError(field, problem) for field, problem in refused.problems]
            ) from None
        return self._timeline.record(
            customer.id,
            {
                "type": "purchase",
                "channel": channel,
                "currency": currency,
                "items": [asdict(item) for item in items],
            },
        )
