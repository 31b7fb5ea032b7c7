"""InteractionService against the in-memory timeline: no AWS."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.errors import Conflict, NotFound, Unprocessable, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.interactions import InteractionService

STAFF = Actor("staff-1", "staff", "POST /customers/{customer_id}/interactions")


@pytest.fixture
def service(store, cursors, clock) -> InteractionService:
    numbers = itertools.count(1)
    return InteractionService(
        store.interactions, store.customers, cursors, clock, new_id=lambda at: f"int_{next(numbers):04d}"
    )


@pytest.fixture
def customer(store, cursors, clock):
    return CustomerService(store.customers, cursors, clock).create({"name": "Anna"}, STAFF)


def _purchase(service, customer_id, quantity=2):
    line = {"sku": "TEA-1", "name": "Tea", "quantity": quantity, "unit_price": Decimal("5.00")}
    return service.record(
        customer_id, {"type": "purchase", "channel": "store", "currency": "EUR", "items": [line]}
    )


def _return(service, customer_id, purchase_id, quantity=1, **overrides):
    line = {"sku": "TEA-1", "name": "Tea", "quantity": quantity, "unit_price": Decimal("5.00")}
    fields = {
        "type": "return",
        "channel": "store",
        "currency": "EUR",
        "purchase_id": purchase_id,
        "items": [line],
    }
    return service.record(customer_id, fields | overrides)


def test_a_recorded_interaction_is_on_the_customers_timeline(service, customer, clock):
    visit = service.record(customer.id, {"type": "visit", "channel": "store"})

    assert service.get(customer.id, visit.id) == visit
    assert (visit.occurred_at, visit.created_at) == (clock.now(), clock.now())


def test_an_interaction_for_an_unknown_customer_is_not_found(service):
    with pytest.raises(NotFound):
        service.record("cus_missing", {"type": "visit", "channel": "store"})
    with pytest.raises(NotFound):
        service.timeline("cus_missing", None, 10, None)


def test_a_return_records_its_quantities_on_the_purchase(service, store, customer):
    purchase = _purchase(service, customer.id)

    _return(service, customer.id, purchase.id)

    assert store.interactions.get(customer.id, purchase.id).returned == {"TEA-1": 1}


def test_a_return_of_more_than_the_purchase_has_left_is_a_conflict_on_the_quantity(service, customer):
    purchase = _purchase(service, customer.id, quantity=2)
    _return(service, customer.id, purchase.id, quantity=1)

    with pytest.raises(Conflict) as raised:
        _return(service, customer.id, purchase.id, quantity=2)
    assert [e.field for e in raised.value.errors] == ["items.0.quantity"]


def test_a_return_must_name_a_purchase_of_the_customer_in_its_currency(service, customer):
    visit = service.record(customer.id, {"type": "visit", "channel": "store"})
    purchase = _purchase(service, customer.id)

    with pytest.raises(Unprocessable) as not_a_purchase:
        _return(service, customer.id, visit.id)
    with pytest.raises(Unprocessable) as other_currency:
        _return(service, customer.id, purchase.id, currency="SEK")
    assert not_a_purchase.value.errors[0].field == "purchase_id"
    assert other_currency.value.errors[0].field == "currency"


def test_a_return_whose_purchase_changed_meanwhile_is_counted_against_the_purchase_as_it_is_now(
    service, store, customer
):
    purchase = _purchase(service, customer.id, quantity=2)
    store.interactions.rivals.before_next_write(
        lambda: _return(service, customer.id, purchase.id, quantity=1)
    )

    _return(service, customer.id, purchase.id, quantity=1)

    assert store.interactions.get(customer.id, purchase.id).returned == {"TEA-1": 2}


def test_an_interaction_for_a_customer_deleted_meanwhile_is_not_found(service, store, customer):
    store.interactions.rivals.before_next_write(lambda: store.customers.delete(customer, customer.updated_at))

    with pytest.raises(NotFound):
        service.record(customer.id, {"type": "visit", "channel": "store"})


def test_the_timeline_is_newest_first_a_page_at_a_time_and_filters_by_type(service, customer):
    recorded = [
        service.record(customer.id, {"type": t, "channel": "web"}) for t in ("visit", "inquiry", "visit")
    ]

    first = service.timeline(customer.id, None, 2, None)
    second = service.timeline(customer.id, None, 2, first.next_cursor)

    assert [i.id for i in first.items + second.items] == [i.id for i in reversed(recorded)]
    assert [i.id for i in service.timeline(customer.id, "visit", 10, None).items] == [
        recorded[2].id,
        recorded[0].id,
    ]
    with pytest.raises(ValidationFailed):
        service.timeline(customer.id, "visit", 2, first.next_cursor)


def test_an_interaction_of_another_customer_is_not_found(service, store, customer, cursors, clock):
    other = CustomerService(store.customers, cursors, clock).create({"name": "Bo"}, STAFF)
    visit = service.record(other.id, {"type": "visit", "channel": "store"})

    with pytest.raises(NotFound):
        service.get(customer.id, visit.id)


def test_a_return_recorded_again_under_its_claimed_id_is_the_one_recorded(service, customer):
    purchase = _purchase(service, customer.id, quantity=2)
    line = {"sku": "TEA-1", "name": "Tea", "quantity": 2, "unit_price": Decimal("5.00")}
    fields = {
        "type": "return",
        "channel": "web",
        "currency": "EUR",
        "purchase_id": purchase.id,
        "items": [line],
    }
    first = service.record(customer.id, dict(fields), "int_claimed")

    # All of the purchase is returned now: the same return again finds itself, not "too many".
    again = service.record(customer.id, dict(fields), "int_claimed")
    assert again == first
    assert service.get(customer.id, purchase.id).returned == {"TEA-1": 2}


def test_a_fresh_id_found_taken_answers_the_interaction_recorded_under_it(service, customer, clock):
    line = {"sku": "TEA-1", "name": "Tea", "quantity": 1, "unit_price": Decimal("5.00")}
    fields = {"type": "purchase", "channel": "web", "currency": "EUR", "items": [line]}
    first = service.record(customer.id, dict(fields), "int_row_7", fresh=True)

    # A bulk import's row written again after a run whose answer never came: not looked for
    # first, the write finds the id taken and answers what is there, with nothing added.
    clock.advance(timedelta(seconds=5))
    again = service.record(customer.id, dict(fields, channel="store"), "int_row_7", fresh=True)
    assert again == first
    assert [i.id for i in service.timeline(customer.id, None, 10, None).items] == ["int_row_7"]
