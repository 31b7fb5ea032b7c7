"""The segment services against in-memory fakes: evaluations converge and count once, races are
read again, backfills walk every page and end ready, deleted segments and customers leave."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.domain.customers import Customer
from chalicelib.domain.segments import Rules
from chalicelib.errors import NotFound, PreconditionFailed
from chalicelib.services import segment_membership as module
from chalicelib.services.segment_membership import MembershipService
from chalicelib.services.segments import SegmentService


@pytest.fixture
def segments(store, clock, cursors) -> SegmentService:
    return SegmentService(store.segments, store.segments, store.customers, clock, cursors)


@pytest.fixture
def membership(store, clock) -> MembershipService:
    return MembershipService(
        store.segments,
        store.segments,
        store.customers,
        store.loyalty,
        store.cases,
        lambda: store.segments_queue,
        clock,
    )


def customer(store, clock, n: int, **fields) -> str:
    at = clock.now() + timedelta(seconds=n)
    made = Customer(id=f"cus_{n:04d}", name=f"Kund {n}", created_at=at, updated_at=at, version=1, **fields)
    store.customers.add(made)
    return made.id


def run_queue(store, membership) -> None:
    """Deliver the segments queue's messages until none is left, as the consumer would."""
    while store.segments_queue.messages:
        message = store.segments_queue.messages.pop(0)
        if message["type"] == "evaluate":
            membership.evaluate(message["customer_ids"], message["case_ids"])
        elif message["type"] == "build":
            membership.build_page(message["segment_id"], message["build"], message["page"], message["start"])
        else:
            membership.drop(message["segment_id"])


def test_an_evaluation_joins_and_leaves_and_counts_each_change_once(store, segments, membership, clock):
    swede = customer(store, clock, 1, locale="sv-SE")
    segment = segments.create("Svenska", None, Rules(locales=("sv",)))
    assert membership.evaluate([swede]) == 1
    assert membership.evaluate([swede, swede]) == 0  # a redelivery changes nothing
    assert segments.get(segment.id).member_count == 1
    store.customers.profiles[swede] = replace(store.customers.profiles[swede], locale="fi")
    assert membership.evaluate([swede]) == 1
    assert segments.get(segment.id).member_count == 0


def test_an_evaluation_that_loses_a_race_reads_again_and_does_not_count_twice(
    store, segments, membership, clock
):
    vip = customer(store, clock, 1, tags=("vip",))
    segment = segments.create("VIP", None, Rules(tags_any=("vip",)))
    store.segments.rivals.before_next_write(lambda: membership.evaluate([vip]))
    assert membership.evaluate([vip]) == 0  # the rival joined first; read again, nothing left to do
    assert segments.get(segment.id).member_count == 1
    assert store.segments.joined[vip] == {segment.id: clock.now()}


def test_an_evaluation_of_rules_changed_meanwhile_reads_them_again(store, segments, membership, clock):
    swede = customer(store, clock, 1, locale="sv")
    segment = segments.create("S", None, Rules(locales=("sv",)))
    store.segments.rivals.before_next_write(
        lambda: segments.update(segment.id, {"rules": Rules(locales=("fi",))}, None)
    )
    assert membership.evaluate([swede]) == 0  # the join of the old rules did not hold: read again
    assert store.segments.joined.get(swede, {}) == {}


def test_a_backfill_walks_every_page_and_is_ready_with_an_exact_count(
    store, segments, membership, clock, monkeypatch
):
    monkeypatch.setattr(module, "BUILD_PAGE", 3)
    ids = [customer(store, clock, n, tags=("vip",) if n % 3 == 0 else ()) for n in range(10)]
    segment = segments.create("VIP", None, Rules(tags_any=("vip",)))
    membership.build_started(segment.id, segment.build)
    run_queue(store, membership)
    built = segments.get(segment.id)
    assert built.status == "ready" and built.member_count == 4
    assert {m.customer.id for m in _walk(segments, segment.id)} == set(ids[::3])


def _walk(segments, segment_id: str, limit: int = 2) -> list:
    found, cursor = [], None
    for _ in range(100):
        page = segments.members(segment_id, limit, cursor)
        found += page.items
        cursor = page.next_cursor
        if cursor is None:
            return found
    raise AssertionError("the pages never end")


def test_a_redelivered_last_page_still_marks_the_segment_ready(
    store, segments, membership, clock, monkeypatch
):
    monkeypatch.setattr(module, "BUILD_PAGE", 10)
    for n in range(4):
        customer(store, clock, n)
    segment = segments.create("All", None, Rules(never_purchased=True))
    real = store.segments.mark_ready
    store.segments.mark_ready = lambda *a: (_ for _ in ()).throw(TimeoutError("lost"))
    with pytest.raises(TimeoutError):
        membership.build_page(segment.id, 1, 0, None)
    store.segments.mark_ready = real
    assert membership.build_page(segment.id, 1, 0, None) == "ready"
    assert segments.get(segment.id).status == "ready" and segments.get(segment.id).member_count == 4


def test_a_rename_during_the_build_does_not_undo_ready(store, segments, membership, clock):
    customer(store, clock, 1)
    segment = segments.create("All", None, Rules(never_purchased=True))
    membership.build_page(segment.id, 1, 0, None)
    renamed = segments.update(segment.id, {"name": "Everyone"}, 1)
    assert (renamed.name, segments.get(segment.id).status) == ("Everyone", "ready")


def test_a_backfill_of_old_rules_or_a_deleted_segment_stops(store, segments, membership, clock):
    customer(store, clock, 1, locale="sv")
    segment = segments.create("S", None, Rules(locales=("sv",)))
    changed = segments.update(segment.id, {"rules": Rules(locales=("fi",))}, None)
    assert changed.status == "building" and changed.build == 2
    assert membership.build_page(segment.id, 1, 0, None) == "superseded"
    segments.delete(segment.id, None)
    assert membership.build_page(segment.id, 2, 0, None) == "superseded"
    assert store.segments.joined == {}


def test_a_page_whose_segment_gets_new_rules_midway_stops_without_writing_old_rules(
    store, segments, membership, clock
):
    first, second = customer(store, clock, 1, locale="sv"), customer(store, clock, 2, locale="sv")
    segment = segments.create("S", None, Rules(locales=("sv",)))
    store.segments.rivals.before_next_write(
        lambda: None, lambda: segments.update(segment.id, {"rules": Rules(locales=("fi",))}, None)
    )
    assert membership.build_page(segment.id, 1, 0, None) == "superseded"
    assert store.segments.joined.get(second, {}) == {}  # the old rules never joined the second
    assert first in store.segments.joined


def test_a_stale_if_match_is_refused_and_an_unknown_segment_is_not_found(store, segments):
    segment = segments.create("S", None, Rules(never_purchased=True))
    with pytest.raises(PreconditionFailed):
        segments.update(segment.id, {"name": "T"}, 7)
    with pytest.raises(PreconditionFailed):
        segments.delete(segment.id, 7)
    with pytest.raises(NotFound):
        segments.get("seg_nope")
    assert segments.update(segment.id, {"name": "S"}, 1).version == 1  # no change, no write


def test_a_deleted_segments_members_leave_in_batches(store, segments, membership, clock, monkeypatch):
    monkeypatch.setattr(module, "DROP_BATCH", 2)
    ids = [customer(store, clock, n) for n in range(5)]
    segment = segments.create("All", None, Rules(never_purchased=True))
    membership.evaluate(ids)
    segments.delete(segment.id, None)
    membership.segment_deleted(segment.id)
    run_queue(store, membership)
    assert all(not joined for joined in store.segments.joined.values())


def test_a_deleted_customer_leaves_every_segment(store, segments, membership, clock):
    gone = customer(store, clock, 1, tags=("vip",))
    a = segments.create("A", None, Rules(tags_any=("vip",)))
    b = segments.create("B", None, Rules(never_purchased=True))
    membership.evaluate([gone])
    assert membership.forget(gone) == 2
    assert segments.get(a.id).member_count == 0 and segments.get(b.id).member_count == 0


def test_a_membership_of_a_deleted_segment_is_removed_and_of_a_new_one_kept(
    store, segments, membership, clock
):
    kept = customer(store, clock, 1)
    old = segments.create("Old", None, Rules(never_purchased=True))
    membership.evaluate([kept])
    del store.segments.definitions[old.id]  # deleted; its clean-up has not come yet
    membership.evaluate([kept])
    assert store.segments.joined[kept] == {}
    new = segments.create("New", None, Rules(never_purchased=True))
    membership.build_page(new.id, 1, 0, None)
    real, calls = store.segments.all, []

    def read_before_the_new_segment():  # the first list was read before it was created
        calls.append(1)
        return [] if len(calls) == 1 else real()

    store.segments.all = read_before_the_new_segment
    membership.evaluate([kept])
    assert store.segments.joined[kept] == {new.id: clock.now()}


def test_time_driven_rules_are_reviewed_when_due(store, segments, membership, clock):
    from chalicelib.domain.loyalty.aggregates import Aggregates
    from chalicelib.store.loyalty import StoredLoyalty

    idle = customer(store, clock, 1)
    store.loyalty.aggregates[idle] = StoredLoyalty(
        idle, Aggregates(purchase_count=1, last_purchase_at=clock.now()), "bronze", 10, clock.now(), 1
    )
    segment = segments.create("Idle", None, Rules(inactive_days_at_least=30))
    membership.evaluate([idle])
    assert store.segments.review_at[idle] == clock.now() + timedelta(days=30)
    assert membership.review_due() == 0
    clock.advance(timedelta(days=30))
    assert membership.review_due() == 1
    run_queue(store, membership)
    assert segments.get(segment.id).member_count == 1 and idle not in store.segments.review_at


def test_a_backfill_of_another_segment_keeps_a_review_that_is_due(store, segments, membership, clock):
    from chalicelib.domain.loyalty.aggregates import Aggregates
    from chalicelib.store.loyalty import StoredLoyalty

    idle = customer(store, clock, 1)
    store.loyalty.aggregates[idle] = StoredLoyalty(
        idle, Aggregates(purchase_count=1, last_purchase_at=clock.now()), "bronze", 10, clock.now(), 1
    )
    segments.create("Idle", None, Rules(inactive_days_at_least=30))
    membership.evaluate([idle])
    clock.advance(timedelta(days=31))
    other = segments.create("Bronze", None, Rules(tiers=("bronze",)))
    membership.build_page(other.id, 1, 0, None)
    assert store.segments.review_at[idle] <= clock.now()  # still due: the review will find it


def test_a_build_that_stopped_making_progress_is_started_again(store, segments, membership, clock):
    customer(store, clock, 1)
    segment = segments.create("All", None, Rules(never_purchased=True))  # its first page was lost
    clock.advance(timedelta(minutes=30))
    assert membership.restart_stuck_builds(clock.now()) == 0
    clock.advance(timedelta(minutes=31))
    assert membership.restart_stuck_builds(clock.now()) == 1
    assert segments.get(segment.id).build == 2
    membership.build_started(segment.id, 2)
    run_queue(store, membership)
    assert segments.get(segment.id).status == "ready"
