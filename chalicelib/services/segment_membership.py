"""Segment membership, maintained by the consumers, never computed when it is read. A change to
a customer (profile, loyalty, cases) queues the customer on the segments queue, whose consumer
evaluates them against every segment; a segment's new rules are backfilled by walking the
customers in pages over the same queue; an hourly schedule queues the customers whose
membership time alone can change. Every evaluation converges the customer's memberships to what
the rules say now, so a redelivered message changes nothing twice."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import islice

from chalicelib.domain import storage
from chalicelib.domain.cases import ACTIVE_STATUSES
from chalicelib.domain.clock import Clock
from chalicelib.domain.events import DEFAULT_TIER
from chalicelib.domain.segments import (
    BUILDING,
    MEMBER_SHARDS,
    Change,
    Facts,
    Segment,
    matches,
    needs_cases,
    needs_habits,
    next_change,
)
from chalicelib.errors import ServiceBusy
from chalicelib.services.ports import Cases, Customers, Loyalty, MembershipStore, SegmentStore, WorkQueue
from chalicelib.services.versions import retry_lost_races
from chalicelib.store.pagination import Key

EVALUATE_BATCH = 25  # customers per evaluation message
BUILD_PAGE = 50  # customers per backfill page
DROP_BATCH = 200  # memberships a deleted segment's clean-up removes per message
CASES_READ = 100
ATTEMPTS = 5
# A build that counted no page for this long is started again (a page's messages went to the
# dead-letter queue, say): the walk and the evaluations are idempotent.
STUCK_AFTER = timedelta(hours=1)


class Superseded(Exception):
    """The backfill's segment was given new rules or deleted while a page was evaluated."""


def _to_stored_precision(moment: datetime | None) -> datetime | None:
    """Up to the next millisecond, as the marker stores it (never too early, and equal to what
    is read back, so an unchanged review is not written again)."""
    if moment is None:
        return None
    return moment + timedelta(microseconds=(1000 - moment.microsecond % 1000) % 1000)


class MembershipService:
    def __init__(
        self,
        segments: SegmentStore,
        members: MembershipStore,
        customers: Customers,
        loyalty: Loyalty,
        cases: Cases,
        queue: Callable[[], WorkQueue],
        clock: Clock,
    ) -> None:
        self._segments = segments
        self._members = members
        self._customers = customers
        self._loyalty = loyalty
        self._cases = cases
        self._queue = queue
        self._clock = clock

    # From the streams and the schedule

    def customers_changed(self, customer_ids: Iterable[str], case_ids: Iterable[str] = ()) -> int:
        """Queue the customers for evaluation (`case_ids`: cases just changed, read again
        strongly consistent, since the index that lists a customer's cases lags)."""
        customers, cases = sorted(set(customer_ids)), sorted(set(case_ids))
        self._queue().send_many(
            {"type": "evaluate", "customer_ids": customers[start : start + EVALUATE_BATCH], "case_ids": cases}
            for start in range(0, len(customers), EVALUATE_BATCH)
        )
        return len(customers)

    def build_started(self, segment_id: str, build: int) -> None:
        self._queue().send(
            {"type": "build", "segment_id": segment_id, "build": build, "page": 0, "start": None}
        )

    def segment_deleted(self, segment_id: str) -> None:
        self._queue().send({"type": "drop", "segment_id": segment_id})

    def review_due(self, at_most: int = 50_000) -> int:
        """Queue the customers whose time-driven memberships may have changed by now (and start
        again any build that has stopped making progress)."""
        now = self._clock.now()
        self.restart_stuck_builds(now)
        return self.customers_changed(islice(self._members.due_for_review(now), at_most))

    def restart_stuck_builds(self, now: datetime) -> int:
        restarted = 0
        for segment in self._segments.all():
            progress = self._segments.progress(segment.id) if segment.status == BUILDING else None
            if progress is None or progress.updated_at is None or now - progress.updated_at < STUCK_AFTER:
                continue
            try:
                self._segments.update(segment, replace(segment, build=segment.build + 1, updated_at=now))
                restarted += 1
            except storage.VersionConflict:
                pass  # changed meanwhile: that change started a build of its own
        return restarted

    # The segments queue

    def evaluate(self, customer_ids: Iterable[str], case_ids: Iterable[str] = ()) -> int:
        """Bring each customer's memberships in line with every segment; returns the number of
        memberships changed."""
        segments = self._segments.all()
        wanted = any(needs_cases(s.rules) for s in segments)
        hints = {case_id: self._cases.get(case_id, consistent=True) for case_id in case_ids} if wanted else {}
        changed = 0
        for customer_id in customer_ids:
            count, segments = self._converge(customer_id, segments, hints, whole=True)
            changed += count
        return changed

    def build_page(self, segment_id: str, build: int, page: int, start: Key | None) -> str:
        """One page of a backfill: queue the next page first (the walk goes on while this page
        is evaluated), evaluate this page's customers against the segment, count the page
        done once, and mark the segment ready once every page is."""
        segment = self._segments.get(segment_id, consistent=True, counted=False)
        if segment is None or segment.build != build:
            return "superseded"
        outcome = "done before"
        if not self._segments.page_done(segment_id, build, page):
            customer_ids, next_key = self._segments.customers_page(BUILD_PAGE, start)
            if next_key is not None:
                next_page = {"type": "build", "segment_id": segment_id, "build": build, "page": page + 1}
                self._queue().send({**next_page, "start": next_key})
            else:
                self._segments.walk_ended(segment_id, build, page + 1)
            try:
                for customer_id in customer_ids:
                    self._converge(customer_id, [segment], {}, whole=False)
                self._segments.mark_page_done(segment_id, build, page, self._clock.now())
            except (Superseded, storage.ConditionFailed):
                return "superseded"
            except storage.AlreadyExists:
                pass
            outcome = "page done"
        # Also when done before: the delivery that counted the page may have stopped here.
        progress = self._segments.progress(segment_id)
        if progress is not None and progress.complete(build) and self._segments.mark_ready(segment_id, build):
            return "ready"
        return outcome

    def drop(self, segment_id: str) -> bool:
        """Remove up to DROP_BATCH members of a deleted segment; True when none is left (else
        another message goes on)."""
        if self._segments.get(segment_id, consistent=True, counted=False) is not None:
            return True  # not deleted after all (a stale record): nothing to drop
        left = DROP_BATCH
        for shard in range(MEMBER_SHARDS):
            for customer_id in self._members.members_of_shard(segment_id, shard):
                if left == 0:
                    self.segment_deleted(segment_id)
                    return False
                left -= self._leave(customer_id, {segment_id})
        self._segments.remove_segment_items(segment_id)
        return True

    def forget(self, customer_id: str) -> int:
        """A deleted or erased customer leaves every segment (before the purge of their items:
        the counters count down with each membership)."""
        return self._leave(customer_id, None)

    def _leave(self, customer_id: str, only: set[str] | None) -> int:
        def attempt() -> int:
            read = self._members.memberships(customer_id)
            leaving = sorted(sid for sid in read.joined if only is None or sid in only)
            # Leaving a deleted segment holds only while it is deleted; a customer who is gone
            # leaves whatever the definitions say.
            changes = [Change(sid, None, checked=only is not None) for sid in leaving]
            self._members.write_memberships(
                customer_id, read, changes, None if only is None else read.review_at
            )
            return len(changes)

        lost = (storage.VersionConflict, ServiceBusy)
        return retry_lost_races(attempt, storage.VersionConflict(customer_id), attempts=ATTEMPTS, lost=lost)

    def _converge(
        self, customer_id: str, segments: list[Segment], hints: Mapping, *, whole: bool
    ) -> tuple[int, list[Segment]]:
        """Evaluate until the write holds: another evaluation came first (read again), the
        customer went (leave), a definition changed (read the definitions again; a backfill's
        own segment changed: Superseded)."""
        for _ in range(ATTEMPTS):
            try:
                return self._converge_once(customer_id, segments, hints, whole), segments
            except storage.VersionConflict as error:
                if error.record == "segments":
                    segments = self._segments.all() if whole else self._same_build(segments[0])
            except (storage.ConditionFailed, ServiceBusy):
                continue
        raise storage.VersionConflict(customer_id)

    def _same_build(self, segment: Segment) -> list[Segment]:
        fresh = self._segments.get(segment.id, consistent=True, counted=False)
        if fresh is None or fresh.build != segment.build:
            raise Superseded(segment.id)
        return [fresh]

    def _converge_once(self, customer_id: str, segments: list[Segment], hints: Mapping, whole: bool) -> int:
        now = self._clock.now()
        read = self._members.memberships(customer_id)
        if not segments and not read.joined and read.review_at is None:
            return 0  # nothing to evaluate against, nothing to leave
        facts = self._facts(customer_id, segments, hints)
        builds = {s.id: s.build for s in segments}
        wanted = {s.id for s in segments if facts is not None and matches(s.rules, facts, now)}
        changes = [Change(s.id, s.build, now) for s in segments if s.id in wanted and s.id not in read.joined]
        for sid in sorted(set(read.joined) - wanted):
            if sid in builds:
                changes.append(Change(sid, builds[sid]))
            elif whole:  # not listed: deleted (the write checks), or new since the list was read
                changes.append(Change(sid, None))
        moments = [next_change(s.rules, facts, now) for s in segments] if facts is not None else []
        # A backfill evaluates one segment: a review the others need stays, even a past one.
        if read.review_at is not None and (not whole or read.review_at > now):
            moments.append(read.review_at)
        review = _to_stored_precision(min((m for m in moments if m is not None), default=None))
        self._members.write_memberships(customer_id, read, changes, review)
        return len(changes)

    def _facts(self, customer_id: str, segments: list[Segment], hints: Mapping) -> Facts | None:
        customer = self._customers.get(customer_id, consistent=True)
        if customer is None:
            return None
        habits_needed = any(needs_habits(s.rules) for s in segments)
        stored = (
            self._loyalty.with_all_habits(customer_id)
            if habits_needed
            else self._loyalty.get(customer_id, consistent=True)
        )
        aggregates = stored.aggregates if stored is not None else None
        return Facts(
            customer_id=customer_id,
            locale=customer.locale,
            tags=tuple(customer.tags),
            marketing_consent=customer.marketing_consent,
            tier=stored.tier if stored is not None else DEFAULT_TIER,
            score=stored.score if stored is not None else 0,
            last_purchase_at=aggregates.last_purchase_at if aggregates is not None else None,
            habits=dict(aggregates.skus) if aggregates is not None and habits_needed else {},
            open_complaints=any(needs_cases(s.rules) for s in segments)
            and self._has_open_case(customer_id, hints),
        )

    def _has_open_case(self, customer_id: str, hints: Mapping) -> bool:
        start = None
        while True:
            cases, start = self._cases.of_customer(customer_id, CASES_READ, start)
            for case in cases:
                fresh = hints.get(case.id, case)
                if fresh is not None and fresh.status in ACTIVE_STATUSES:
                    return True
            if start is None:
                break
        # A case just opened may not be in the index yet.
        return any(
            case is not None and case.customer_id == customer_id and case.status in ACTIVE_STATUSES
            for case in hints.values()
        )
