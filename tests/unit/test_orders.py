"""Orders from the catalogue: the pure pricing rules and the service, with in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction, LineItem
from chalicelib.domain.products import OrderLine, OrderRefused, Product, price_order
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.services.orders import OrderService

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def product(sku: str, price: str = "12.90", currency: str = "EUR", active: bool = True) -> Product:
    return Product(
        sku, {"en": f"{sku} (en)", "sv": f"{sku} (sv)"}, Decimal(price), currency, NOW, NOW, active
    )


CATALOGUE = {p.sku: p for p in (product("MUG"), product("TEA", "4.50"), product("OLD", active=False))}


def test_an_order_is_priced_from_the_catalogue_in_the_customers_language():
    currency, items = price_order([OrderLine("MUG", 2), OrderLine("TEA", 1)], CATALOGUE, "sv-FI")
    assert currency == "EUR"
    assert items == (
        LineItem("MUG", "MUG (sv)", 2, Decimal("12.90")),
        LineItem("TEA", "TEA (sv)", 1, Decimal("4.50")),
    )


def test_a_language_without_a_name_falls_back_to_english():
    _, items = price_order([OrderLine("MUG", 1)], CATALOGUE, "fi")
    assert items[0].name == "MUG (en)"


def test_unknown_and_inactive_products_are_named_by_their_line():
    with pytest.raises(OrderRefused) as refused:
        price_order([OrderLine("MUG", 1), OrderLine("NOPE", 1), OrderLine("OLD", 1)], CATALOGUE, "en")
    assert refused.value.problems == [
        ("items.1.sku", "is not a product we sell"),
        ("items.2.sku", "is not a product we sell"),
    ]


def test_one_order_is_paid_in_one_currency():
    catalogue = CATALOGUE | {"KRONA": product("KRONA", "10", "SEK")}
    with pytest.raises(OrderRefused) as refused:
        price_order([OrderLine("MUG", 1), OrderLine("KRONA", 1)], catalogue, "en")
    assert refused.value.problems == [("items", "mixes currencies ['EUR', 'SEK']")]


def test_an_empty_order_is_refused():
    with pytest.raises(OrderRefused):
        price_order([], CATALOGUE, "en")


class FakeCustomers:
    def __init__(self, *customers: Customer) -> None:
        self._customers = {c.id: c for c in customers}

    def get(self, customer_id: str) -> Customer:
        if customer_id not in self._customers:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        return self._customers[customer_id]


class FakeCatalogue:
    def __init__(self, products: dict[str, Product]) -> None:
        self._products = products
        self.reads = 0

    def get_many(self, skus):
        self.reads += 1
        return {sku: self._products[sku] for sku in skus if sku in self._products}


class FakeTimeline:
    def __init__(self, earlier: Interaction | None = None) -> None:
        self.earlier = earlier
        self.recorded: list[tuple[str, dict]] = []

    def written_by_earlier_attempt(self, customer_id: str) -> Interaction | None:
        return self.earlier

    def record(self, customer_id: str, fields: dict) -> Interaction:
        self.recorded.append((customer_id, fields))
        rest = {name: value for name, value in fields.items() if name != "items"}
        items = tuple(LineItem(**item) for item in fields["items"])
        return Interaction(
            f"int_{len(self.recorded)}", customer_id, occurred_at=NOW, created_at=NOW, items=items, **rest
        )


ANNA = Customer(id="cus_1", name="Anna", locale="sv", created_at=NOW, updated_at=NOW)


def test_placing_an_order_records_a_purchase_at_the_catalogues_prices():
    timeline = FakeTimeline()
    service = OrderService(FakeCustomers(ANNA), FakeCatalogue(CATALOGUE), timeline)
    purchase = service.place("cus_1", [OrderLine("MUG", 3)], "web")
    line = {"sku": "MUG", "name": "MUG (sv)", "quantity": 3, "unit_price": Decimal("12.90")}
    assert timeline.recorded == [
        ("cus_1", {"type": "purchase", "channel": "web", "currency": "EUR", "items": [line]})
    ]
    assert purchase.items == (LineItem("MUG", "MUG (sv)", 3, Decimal("12.90")),)
    assert purchase.amount == Decimal("38.70")


def test_a_refused_order_is_422_with_its_fields_and_records_nothing():
    timeline = FakeTimeline()
    service = OrderService(FakeCustomers(ANNA), FakeCatalogue(CATALOGUE), timeline)
    with pytest.raises(Unprocessable) as refused:
        service.place("cus_1", [OrderLine("OLD", 1)], "web")
    assert [(e.field, e.message) for e in refused.value.errors] == [
        ("items.0.sku", "is not a product we sell")
    ]
    assert timeline.recorded == []


def test_the_retry_of_a_placed_order_returns_it_without_reading_the_catalogue():
    earlier = Interaction("int_0", "cus_1", "purchase", "web", NOW, NOW, currency="EUR")
    catalogue = FakeCatalogue({})
    service = OrderService(FakeCustomers(ANNA), catalogue, FakeTimeline(earlier))
    assert service.place("cus_1", [OrderLine("GONE", 1)], "web") is earlier
    assert catalogue.reads == 0


def test_an_unknown_customer_orders_nothing():
    service = OrderService(FakeCustomers(), FakeCatalogue(CATALOGUE), FakeTimeline())
    with pytest.raises(NotFound):
        service.place("cus_9", [OrderLine("MUG", 1)], "web")
