"""LoyaltyService against the in-memory loyalty items: exactly-once application of interaction
records, coalesced per customer, and the reads of a customer's loyalty, without AWS."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.domain.loyalty.config import LoyaltyConfig
from chalicelib.domain.loyalty.contributions import Contribution, Line
from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.loyalty import InteractionChange, LoyaltyService

STAFF = Actor("staff-1", "staff", "POST /customers")


@pytest.fixture
def service(store, clock, cursors) -> LoyaltyService:
    return LoyaltyService(
        store.loyalty, clock, LoyaltyConfig(), "EUR", cursors, was_deleted=store.customers.was_deleted
    )


@pytest.fixture
def anna(store, cursors, clock):
    return CustomerService(store.customers, cursors, clock).create({"name": "Anna"}, STAFF)


def _purchase(customer_id, n, clock, *, version=1, amount="50", skus=("TEA-1",), removed=False):
    contribution = Contribution(
        f"int_{n}",
        "purchase",
        clock.now(),
        "EUR",
        Decimal(amount),
        tuple(Line(s, s.title(), 1) for s in skus),
    )
    return InteractionChange(
        f"rec-{n}-{version}-{removed}", customer_id, f"int_{n}", version, contribution, removed
    )


def test_a_purchase_counts_once_however_often_its_record_is_delivered(service, store, anna, clock):
    record = _purchase(anna.id, 1, clock)

    assert service.apply([record, record]) == {}
    saves = store.loyalty.saves
    assert service.apply([record]) == {}

    view = service.detail(anna.id)
    assert (view.aggregates.purchase_count, view.aggregates.net_spend) == (1, {"EUR": Decimal("50")})
    assert [h.sku for h in view.habits] == ["TEA-1"]
    assert store.loyalty.saves == saves


def test_a_newer_version_replaces_what_the_older_counted_and_a_removal_takes_it_back(service, anna, clock):
    service.apply([_purchase(anna.id, 1, clock, amount="50")])
    service.apply([_purchase(anna.id, 1, clock, version=2, amount="80")])
    assert service.detail(anna.id).aggregates.net_spend == {"EUR": Decimal("80")}

    service.apply([_purchase(anna.id, 1, clock, version=3, amount="80", removed=True)])

    view = service.detail(anna.id)
    assert (view.aggregates.purchase_count, view.habits) == (0, ())


def test_the_records_of_a_batch_are_coalesced_into_one_write_per_customer(service, store, anna, clock):
    service.apply([_purchase(anna.id, n, clock) for n in range(5)])

    assert store.loyalty.saves == 1
    assert service.detail(anna.id).aggregates.purchase_count == 5


def test_a_record_of_a_customer_that_never_was_fails_alone(service, anna, clock):
    failures = service.apply([_purchase("cus_never", 1, clock), _purchase(anna.id, 2, clock)])

    assert list(failures) == ["rec-1-1-False"]
    assert service.detail(anna.id).aggregates.purchase_count == 1


def test_a_record_of_a_deleted_customer_is_skipped(service, store, anna, clock):
    store.customers.delete(anna, clock.now())

    assert service.apply([_purchase(anna.id, 1, clock)]) == {}


def test_a_write_that_loses_a_race_is_read_again_and_both_changes_count(service, store, anna, clock):
    store.loyalty.rivals.before_next_write(lambda: service.apply([_purchase(anna.id, 2, clock)]))

    assert service.apply([_purchase(anna.id, 1, clock)]) == {}

    assert service.detail(anna.id).aggregates.purchase_count == 2


def test_an_unknown_customers_loyalty_is_not_found(service):
    with pytest.raises(NotFound):
        service.detail("cus_never")
    with pytest.raises(NotFound):
        service.habits("cus_never", 10, None)


def test_habits_page_in_sku_order(service, anna, clock):
    service.apply([_purchase(anna.id, 1, clock, skus=("C", "A", "B"))])

    first = service.habits(anna.id, 2, None)
    second = service.habits(anna.id, 2, first.next_cursor)

    assert [h.sku for h in first.items + second.items] == ["A", "B", "C"]
    assert second.next_cursor is None


def test_a_tier_that_decays_with_time_is_refreshed_once(service, store, anna, clock):
    for n in range(16):
        service.apply([_purchase(anna.id, n, clock, amount="400")])
    tier = store.loyalty.get(anna.id).tier
    clock.advance(timedelta(days=400))

    assert service.refresh_due_tiers() >= 1
    assert store.loyalty.get(anna.id).tier != tier
    assert service.by_tier(store.loyalty.get(anna.id).tier, 10, None).items[0].customer_id == anna.id


def test_listing_by_an_unknown_tier_is_invalid(service):
    with pytest.raises(ValidationFailed):
        service.by_tier("diamond", 10, None)
