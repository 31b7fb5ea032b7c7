"""DuplicateService and the creation of customers with possible duplicates, against the
in-memory repositories: no AWS."""

from __future__ import annotations

import itertools

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.errors import NotFound, Unprocessable
from chalicelib.services.customers import CustomerService
from chalicelib.services.duplicates import DuplicateService
from tests.unit.fakes.duplicates import FakeDuplicates

STAFF = Actor("staff-1", "staff", "POST /customers")


@pytest.fixture
def found(store) -> FakeDuplicates:
    return FakeDuplicates(store.customers)


@pytest.fixture
def detection(store, found, cursors, clock) -> DuplicateService:
    return DuplicateService(found, store.customers, cursors, clock, threshold=0.85)


@pytest.fixture
def customers(store, cursors, clock, detection) -> CustomerService:
    numbers = itertools.count(1)
    return CustomerService(
        store.customers, cursors, clock, new_id=lambda: f"cus_{next(numbers):04d}", duplicates=detection
    )


def test_a_new_customer_is_created_with_the_candidates_over_the_threshold_noted_in_its_transaction(
    customers, found
):
    first = customers.create({"name": "Åsa Öberg", "phone": "+46701234567"}, STAFF)
    customers.create({"name": "Asa Oberg"}, STAFF)  # a name alone: listed, never flagged
    created = customers.create_noting_duplicates({"name": "Asa Oberg", "phone": "+46701234567"}, STAFF)

    assert [m.customer_id for m in created.possible_duplicates] == [first.id]
    assert found.noted == {created.customer.id: [(first.id, 0.94)]}


def test_pages_follow_the_ranking_and_a_cursor_is_for_its_customer_only(customers, detection):
    me = customers.create({"name": "Jyrki Mäkelä", "phone": "+358401234567"}, STAFF)
    others = [
        customers.create({"name": n, "phone": "+358401234567"}, STAFF) for n in ("Jyrki Makela", "Aino Laine")
    ]
    customers.create({"name": "Mäkelä Jyrki"}, STAFF)

    first = detection.for_customer(me.id, 2, None)
    assert [m.customer_id for m in first.items] == [others[0].id, others[1].id]
    rest = detection.for_customer(me.id, 2, first.next_cursor)
    assert [m.score for m in rest.items] == [0.7] and rest.next_cursor is None


def test_a_pair_recorded_as_different_people_is_left_out_both_ways_and_recorded_once(
    customers, detection, store
):
    a = customers.create({"name": "Saša Kovačič", "phone": "+38640123456"}, STAFF)
    b = customers.create({"name": "Sasa Kovacic", "phone": "+38640123456"}, STAFF)
    detection.record_not_duplicate(a.id, b.id, STAFF)
    detection.record_not_duplicate(b.id, a.id, STAFF)

    assert detection.for_customer(a.id, 10, None).items == []
    assert detection.for_customer(b.id, 10, None).items == []
    assert [e.action for e in store.audit].count("not_duplicate") == 1


def test_not_duplicate_refuses_the_customer_itself_and_unknown_ids(customers, detection):
    a = customers.create({"name": "Eleanor Whitfield"}, STAFF)
    with pytest.raises(Unprocessable) as itself:
        detection.record_not_duplicate(a.id, a.id, STAFF)
    assert [e.field for e in itself.value.errors] == ["customer_id"]
    with pytest.raises(NotFound) as other:
        detection.record_not_duplicate(a.id, "cus_nobody", STAFF)
    assert [e.field for e in other.value.errors] == ["customer_id"]
    with pytest.raises(NotFound) as path:
        detection.for_customer("cus_nobody", 10, None)
    assert path.value.errors == []
