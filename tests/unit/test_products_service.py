"""ProductService against the in-memory catalogue: no AWS."""

from __future__ import annotations

from decimal import Decimal

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from chalicelib.services.products import ProductService

STAFF = Actor("staff-1", "staff", "POST /products")


@pytest.fixture
def service(store, cursors, clock) -> ProductService:
    return ProductService(store.products, cursors, clock)


def _create(service: ProductService, sku: str = "TEA-1", **fields):
    values = {"sku": sku, "names": {"en": "Tea"}, "price": Decimal("12.9"), "currency": "EUR", "active": True}
    return service.create(values | fields, STAFF)


def test_a_created_product_has_its_price_in_minor_units_and_an_audit_entry_that_reads_like_the_api(
    service, store
):
    product = _create(service)

    assert (product.price, product.version) == (Decimal("12.90"), 1)
    assert service.get("TEA-1") == product
    assert {c.field: c.after for c in store.audit[-1].changes}["price"] == "12.90"


def test_a_second_product_with_the_same_sku_is_a_conflict_on_sku(service):
    _create(service)

    with pytest.raises(Conflict) as raised:
        _create(service)
    assert [e.field for e in raised.value.errors] == ["sku"]


def test_a_price_with_more_digits_than_the_currency_has_is_rejected(service):
    with pytest.raises(ValidationFailed) as raised:
        _create(service, price=Decimal("12.901"))
    assert raised.value.errors[0].field == "price"


def test_a_currency_change_the_price_does_not_fit_names_the_currency(service):
    _create(service, price=Decimal("12.50"))

    with pytest.raises(ValidationFailed) as raised:
        service.update("TEA-1", {"currency": "JPY"}, None, STAFF)
    assert raised.value.errors[0].field == "currency"


def test_an_inactive_product_is_not_found_for_active_only_reads_but_is_in_get_many(service):
    product = _create(service, active=False)

    with pytest.raises(NotFound):
        service.get("TEA-1", active_only=True)
    assert service.get_many(["TEA-1", "NOPE"]) == {"TEA-1": product}


def test_an_update_bumps_the_version_and_one_that_changes_nothing_writes_nothing(service, store):
    _create(service)

    updated = service.update("TEA-1", {"price": Decimal("13")}, if_match=1, actor=STAFF)
    same = service.update("TEA-1", {"price": Decimal("13.00")}, None, STAFF)

    assert (updated.price, updated.version) == (Decimal("13.00"), 2)
    assert same == updated
    assert len(store.audit) == 2


def test_a_stale_if_match_is_rejected_with_412(service):
    _create(service)

    with pytest.raises(PreconditionFailed):
        service.update("TEA-1", {"active": False}, if_match=7, actor=STAFF)


def test_a_race_lost_without_if_match_is_applied_on_top_of_the_rival_change(service, store):
    before = _create(service)
    rival = before.with_changes({"names": {"en": "Green tea"}}, before.updated_at)
    store.products.rivals.before_next_write(lambda: store.products.update(before, rival, store.audit[0]))

    updated = service.update("TEA-1", {"active": False}, None, STAFF)

    assert (updated.names, updated.active, updated.version) == ({"en": "Green tea"}, False, 3)


def test_an_unknown_or_malformed_sku_is_not_found(service):
    with pytest.raises(NotFound):
        service.get("NOPE")
    with pytest.raises(NotFound):
        service.get("not a sku!")


def test_the_catalogue_pages_in_sku_order_and_filters_by_active(service):
    for sku, active in (("C", True), ("A", True), ("B", False)):
        _create(service, sku=sku, active=active)

    first = service.list(2, None)
    second = service.list(2, first.next_cursor)

    assert [p.sku for p in first.items + second.items] == ["A", "B", "C"]
    assert second.next_cursor is None
    assert [p.sku for p in service.list(10, None, active=True).items] == ["A", "C"]
    assert [p.sku for p in service.list(10, None, active=False).items] == ["B"]


def test_a_cursor_of_the_unfiltered_list_is_rejected_by_the_filtered_one(service):
    for sku in ("A", "B"):
        _create(service, sku=sku)

    with pytest.raises(ValidationFailed):
        service.list(1, service.list(1, None).next_cursor, active=True)
