"""The segment service against in-memory fakes: evaluations converge and count once, races are
read again, backfills walk every page and end ready, deleted segments and customers leave."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.customers import Customer
from chalicelib.domain.segments import Rules
from chalicelib.errors import NotFound, PreconditionFailed
from chalicelib.services import segments as module
from chalicelib.services.segments import SegmentService


@pytest.fixture
def service(store, clock, cursors) -> SegmentService:
    return SegmentService(
        store.segments,
        store.customers,
        store.loyalty,
        store.cases,
        lambda: store.segments_queue,
        clock,
        cursors,
    )


def customer(store, clock, n: int, **fields) -> str:
    at = clock.now() + timedelta(seconds=n)
    made = Customer(id=f"cus_{n:04d}", name=f"Kund {n}", created_at=at, updated_at=at, version=1, **fields)
    store.customers.add(made)
    return made.id


def run_queue(store, service) -> None:
    """Deliver the segments queue's messages until none is left, as the consumer would."""
    while store.segments_queue.messages:
        message = store.segments_queue.messages.pop(0)
        if message["type"] == "evaluate":
            service.evaluate(message["customer_ids"], message["case_ids"])
        elif message["type"] == "build":
            service.build_page(message["segment_id"], message["build"], message["page"], message["start"])
        else:
            service.drop(message["segment_id"])


def test_an_evaluation_joins_and_leaves_and_counts_each_change_once(store, service, clock):
    swede = customer(store, clock, 1, locale="sv-SE")
    segment = service.create("Svenska", None, Rules(locales=("sv",)))
    assert service.evaluate([swede]) == 1
    assert service.evaluate([swede, swede]) == 0  # a redelivery changes nothing
    assert service.get(segment.id).member_count == 1
    store.customers.profiles[swede] = replace(store.customers.profiles[swede], locale="fi")
    assert service.evaluate([swede]) == 1
    assert service.get(segment.id).member_count == 0


def test_an_evaluation_that_loses_a_race_reads_again_and_does_not_count_twice(store, service, clock):
    vip = customer(store, clock, 1, tags=("vip",))
    segment = service.create("VIP", None, Rules(tags_any=("vip",)))
    store.segments.rivals.before_next_write(lambda: service.evaluate([vip]))
    assert service.evaluate([vip]) == 0  # the rival joined first; read again, nothing left to do
    assert service.get(segment.id).member_count == 1 and store.segments.joined[vip] == {
        segment.id: clock.now()
    }


def test_a_backfill_walks_every_page_and_is_ready_with_an_exact_count(store, service, clock, monkeypatch):
    monkeypatch.setattr(module, "BUILD_PAGE", 3)
    ids = [customer(store, clock, n, tags=("vip",) if n % 3 == 0 else ()) for n in range(10)]
    segment = service.create("VIP", None, Rules(tags_any=("vip",)))
    service.build_started(segment.id, segment.build)
    run_queue(store, service)
    built = service.get(segment.id)
    assert built.status == "ready" and built.member_count == 4
    assert {m.customer.id for m in service.members(segment.id, 100, None).items} == set(ids[::3])


def test_a_redelivered_backfill_page_is_counted_once(store, service, clock, monkeypatch):
    monkeypatch.setattr(module, "BUILD_PAGE", 2)
    for n in range(4):
        customer(store, clock, n)
    segment = service.create("All", None, Rules(never_purchased=True))
    assert service.build_page(segment.id, 1, 0, None) == "page done"
    assert service.build_page(segment.id, 1, 0, None) == "done before"
    run_queue(store, service)
    assert store.segments.progress(segment.id) == (1, 2, 2)
    assert service.get(segment.id).status == "ready" and service.get(segment.id).member_count == 4


def test_a_backfill_of_old_rules_or_a_deleted_segment_stops(store, service, clock):
    customer(store, clock, 1, locale="sv")
    segment = service.create("S", None, Rules(locales=("sv",)))
    changed = service.update(segment.id, {"rules": Rules(locales=("fi",))}, None)
    assert changed.status == "building" and changed.build == 2
    assert service.build_page(segment.id, 1, 0, None) == "superseded"
    service.delete(segment.id, None)
    assert service.build_page(segment.id, 2, 0, None) == "superseded"
    assert store.segments.joined == {}


def test_a_stale_if_match_is_refused_and_an_unknown_segment_is_not_found(store, service):
    segment = service.create("S", None, Rules(never_purchased=True))
    with pytest.raises(PreconditionFailed):
        service.update(segment.id, {"name": "T"}, 7)
    with pytest.raises(PreconditionFailed):
        service.delete(segment.id, 7)
    with pytest.raises(NotFound):
        service.get("seg_nope")
    assert service.update(segment.id, {"name": "S"}, 1).version == 1  # no change, no write


def test_a_deleted_segments_members_leave_in_batches(store, service, clock, monkeypatch):
    monkeypatch.setattr(module, "DROP_BATCH", 2)
    ids = [customer(store, clock, n) for n in range(5)]
    segment = service.create("All", None, Rules(never_purchased=True))
    service.evaluate(ids)
    service.delete(segment.id, None)
    service.segment_deleted(segment.id)
    run_queue(store, service)
    assert all(not joined for joined in store.segments.joined.values())


def test_a_deleted_customer_leaves_every_segment(store, service, clock):
    gone = customer(store, clock, 1, tags=("vip",))
    a = service.create("A", None, Rules(tags_any=("vip",)))
    b = service.create("B", None, Rules(never_purchased=True))
    service.evaluate([gone])
    assert service.forget(gone) == 2
    assert service.get(a.id).member_count == 0 and service.get(b.id).member_count == 0


def test_a_membership_of_a_segment_deleted_before_the_evaluation_is_removed(store, service, clock):
    kept = customer(store, clock, 1)
    old = service.create("Old", None, Rules(never_purchased=True))
    service.evaluate([kept])
    del store.segments.definitions[old.id]  # deleted; its clean-up has not come yet
    clock.advance(timedelta(seconds=1))
    service.evaluate([kept])
    assert store.segments.joined[kept] == {}


def test_time_driven_rules_are_reviewed_when_due(store, service, clock):
    from chalicelib.domain.loyalty.aggregates import Aggregates
    from chalicelib.store.loyalty import StoredLoyalty

    idle = customer(store, clock, 1)
    store.loyalty.aggregates[idle] = StoredLoyalty(
        idle, Aggregates(purchase_count=1, last_purchase_at=clock.now()), "bronze", 10, clock.now(), 1
    )
    segment = service.create("Idle", None, Rules(inactive_days_at_least=30))
    service.evaluate([idle])
    assert store.segments.review_at[idle] == clock.now() + timedelta(days=30)
    assert service.review_due() == 0
    clock.advance(timedelta(days=30))
    assert service.review_due() == 1
    run_queue(store, service)
    assert service.get(segment.id).member_count == 1 and idle not in store.segments.review_at
