"""CustomerService against the in-memory repositories: no AWS."""

from __future__ import annotations

import itertools

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.errors import Conflict, NotFound, PreconditionFailed, ValidationFailed
from chalicelib.services.customers import CustomerService

STAFF = Actor("staff-1", "staff", "PATCH /customers/{customer_id}")


@pytest.fixture
def service(store, cursors, clock) -> CustomerService:
    numbers = itertools.count(1)
    return CustomerService(store.customers, cursors, clock, new_id=lambda: f"cus_{next(numbers):04d}")


def test_a_created_customer_is_read_back_at_version_1_with_its_audit_entry(service, store):
    created = service.create({"name": "Anna Berg", "email": "Anna@Example.se"}, STAFF)

    assert service.get(created.id) == created
    assert created.version == 1
    assert [(e.action, e.entity_id) for e in store.audit] == [("create", created.id)]
    assert service.find_by_email("anna@example.SE").items == [created]


def test_a_second_customer_with_the_same_address_in_another_case_is_a_conflict_on_email(service):
    service.create({"name": "Anna", "email": "anna@example.se"}, STAFF)

    with pytest.raises(Conflict) as raised:
        service.create({"name": "Other", "email": "ANNA@example.se"}, STAFF)
    assert [e.field for e in raised.value.errors] == ["email"]


def test_an_unknown_customer_is_not_found(service):
    with pytest.raises(NotFound):
        service.get("cus_missing")


def test_an_update_applies_the_changes_at_the_next_version_and_audits_the_diff(service, store, clock):
    created = service.create({"name": "Anna"}, STAFF)

    updated = service.update(created.id, {"phone": "+46701234567"}, if_match=1, actor=STAFF)

    assert (updated.phone, updated.version, updated.updated_at) == ("+46701234567", 2, clock.now())
    assert [(c.field, c.before, c.after) for c in store.audit[-1].changes] == [
        ("phone", None, "+46701234567")
    ]


def test_an_update_that_changes_nothing_writes_nothing(service, store):
    created = service.create({"name": "Anna"}, STAFF)

    assert service.update(created.id, {"name": "Anna"}, None, STAFF) == created
    assert len(store.audit) == 1


def test_a_stale_if_match_is_rejected_with_412(service):
    created = service.create({"name": "Anna"}, STAFF)
    service.update(created.id, {"name": "Anna B"}, None, STAFF)

    with pytest.raises(PreconditionFailed):
        service.update(created.id, {"name": "Anna C"}, if_match=1, actor=STAFF)


def test_a_race_lost_without_if_match_is_applied_on_top_of_the_rival_change(service, store):
    created = service.create({"name": "Anna"}, STAFF)
    store.customers.rivals.before_next_write(
        lambda: store.customers.update(
            created, created.with_changes({"name": "Anna Rival"}, created.updated_at)
        )
    )

    updated = service.update(created.id, {"phone": "+46701234567"}, None, STAFF)

    assert (updated.name, updated.phone, updated.version) == ("Anna Rival", "+46701234567", 3)


def test_a_race_lost_under_if_match_is_a_412_and_keeps_the_rival_change(service, store):
    created = service.create({"name": "Anna"}, STAFF)
    store.customers.rivals.before_next_write(
        lambda: store.customers.update(
            created, created.with_changes({"name": "Anna Rival"}, created.updated_at)
        )
    )

    with pytest.raises(PreconditionFailed):
        service.update(created.id, {"name": "Mine"}, if_match=1, actor=STAFF)
    assert service.get(created.id).name == "Anna Rival"


def test_changing_the_address_to_another_customers_is_a_conflict(service):
    service.create({"name": "Anna", "email": "anna@example.se"}, STAFF)
    bo = service.create({"name": "Bo", "email": "bo@example.se"}, STAFF)

    with pytest.raises(Conflict):
        service.update(bo.id, {"email": "anna@example.se"}, None, STAFF)
    assert service.find_by_email("bo@example.se").items[0].id == bo.id


def test_a_deleted_customer_is_not_found_yet_known_by_its_tombstone(service, store):
    created = service.create({"name": "Anna", "email": "anna@example.se"}, STAFF)

    service.delete(created.id, STAFF)

    with pytest.raises(NotFound):
        service.get(created.id)
    service.require_known(created.id)
    assert store.customers.was_deleted(created.id)
    assert service.find_by_email("anna@example.se").items == []
    with pytest.raises(NotFound):
        service.update(created.id, {"name": "Back"}, None, STAFF)


def test_require_known_rejects_a_customer_that_never_was(service):
    with pytest.raises(NotFound):
        service.require_known("cus_never")


def test_the_newest_customers_come_first_a_page_at_a_time_with_a_signed_cursor(service):
    ids = [service.create({"name": f"Person {n}"}, STAFF).id for n in range(3)]

    first = service.list_newest(2, None)
    second = service.list_newest(2, first.next_cursor)

    assert [c.id for c in first.items] == [ids[2], ids[1]]
    assert [c.id for c in second.items] == [ids[0]]
    assert second.next_cursor is None


def test_a_cursor_of_another_list_is_rejected(service):
    for n in range(3):
        service.create({"name": f"Anna {n}"}, STAFF)
    cursor = service.search("anna", 1, None).next_cursor

    with pytest.raises(ValidationFailed):
        service.list_newest(1, cursor)


def test_search_finds_customers_by_the_start_of_each_word(service):
    anna = service.create({"name": "Anna Bergström"}, STAFF)
    service.create({"name": "Bo Ek"}, STAFF)

    assert service.search("berg ann", 10, None).items == [anna]


def test_search_needs_a_word_of_at_least_two_letters(service):
    with pytest.raises(ValidationFailed) as raised:
        service.search("a", 10, None)
    assert raised.value.errors[0].field == "q"


def test_get_many_returns_only_the_customers_that_exist(service):
    anna = service.create({"name": "Anna"}, STAFF)

    assert service.get_many([anna.id, "cus_missing"]) == {anna.id: anna}
    assert service.get_many([]) == {}
