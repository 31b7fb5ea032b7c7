"""Segment use cases: staff define segments; their membership is maintained, never computed at
read time. A change to a customer (profile, loyalty, cases) puts the customer on the segments
queue, whose consumer evaluates them against every segment; a new or changed rule set is
backfilled by walking the customers in pages over the same queue; a schedule re-evaluates the
customers whose membership time alone can change. Every evaluation converges the customer's
memberships to what the rules say now, so a redelivered message changes nothing twice."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain import ids, storage
from chalicelib.domain.cases import ACTIVE_STATUSES
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.segments import (
    BUILDING,
    MEMBER_SHARDS,
    SEGMENT,
    Facts,
    Rules,
    Segment,
    matches,
    needs_cases,
    needs_habits,
    next_change,
)
from chalicelib.errors import NotFound, PreconditionFailed
from chalicelib.services.ports import Cases, Customers, Loyalty, SegmentStore, WorkQueue
from chalicelib.services.versions import retry_lost_races, update_at_version
from chalicelib.store.pagination import CursorCodec, Key, Page, page_of

DEFAULT_TIER = "bronze"
EVALUATE_BATCH = 25  # customers per evaluation message
BUILD_PAGE = 50  # customers per backfill page
DROP_BATCH = 200  # memberships a deleted segment's clean-up removes per message
CASES_READ = 100
ATTEMPTS = 5


@dataclass(frozen=True)
class MemberView:
    customer: Customer
    joined_at: datetime


class SegmentService:
    def __init__(
        self,
        segments: SegmentStore,
        customers: Customers,
        loyalty: Loyalty,
        cases: Cases,
        queue: Callable[[], WorkQueue],
        clock: Clock,
        cursors: CursorCodec | None = None,
    ) -> None:
        self._segments = segments
        self._customers = customers
        self._loyalty = loyalty
        self._cases = cases
        self._queue = queue
        self._clock = clock
        self._cursors = cursors

    # Staff

    def create(self, name: str, description: str | None, rules: Rules) -> Segment:
        """A new segment, `building` until the backfill has evaluated every customer."""
        now = self._clock.now()
        segment = Segment(ids.new_id(SEGMENT, now), name, description, rules, BUILDING, 1, now, now)
        return self._segments.add(segment)

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment:
        segment = self._segments.get(segment_id, consistent=consistent, counted=counted)
        if segment is None:
            raise NotFound(f"No segment has the id {segment_id!r}.")
        return segment

    def list(self, limit: int, cursor: str | None) -> Page[Segment]:
        return page_of(self._cursors, "segments", cursor, lambda start: self._segments.list(limit, start))

    def update(self, segment_id: str, changes: Mapping, if_match: int | None) -> Segment:
        """Change the name, description or rules (new rules: a new backfill, `building`)."""

        def write(before: Segment) -> Segment:
            after = before.with_changes(changes, self._clock.now())
            if (after.name, after.description, after.rules) == (
                before.name,
                before.description,
                before.rules,
            ):
                return before
            return self._segments.update(before, after)

        return update_at_version("segment", lambda: self.get(segment_id, consistent=True), write, if_match)

    def delete(self, segment_id: str, if_match: int | None) -> None:
        """Delete the definition; its members leave from the customers stream (`drop`)."""
        segment = self.get(segment_id, consistent=True)
        if if_match is not None and segment.version != if_match:
            raise PreconditionFailed(
                f"The segment is at version {segment.version}, not {if_match}: re-read it and retry."
            )
        try:
            self._segments.delete(segment)
        except storage.VersionConflict:
            raise PreconditionFailed(
                "The segment was changed by another request: re-read it and retry."
            ) from None

    def members(self, segment_id: str, limit: int, cursor: str | None) -> Page[MemberView]:
        """A page of members: one Query of the segment's index (more only where the page
        crosses from one shard to the next) and one BatchGetItem of their profiles."""
        self.get(segment_id, counted=False)
        page = page_of(
            self._cursors,
            f"segments/{segment_id}/members",
            cursor,
            lambda start: self._segments.members(segment_id, limit, start),
        )
        profiles = self._customers.get_many([m.customer_id for m in page.items]) if page.items else {}
        views = [
            MemberView(profiles[m.customer_id], m.joined_at) for m in page.items if m.customer_id in profiles
        ]
        return Page(views, page.next_cursor)

    # The customers stream and the schedule

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
        """Queue the customers whose time-driven memberships may have changed by now."""
        due = []
        for customer_id in self._segments.due_for_review(self._clock.now()):
            due.append(customer_id)
            if len(due) >= at_most:
                break
        return self.customers_changed(due)

    # The segments queue

    def evaluate(self, customer_ids: Iterable[str], case_ids: Iterable[str] = ()) -> int:
        """Bring each customer's memberships in line with every segment; returns the number of
        memberships changed."""
        listed_at = self._clock.now()
        segments = self._segments.all()
        hints = {case_id: self._cases.get(case_id, consistent=True) for case_id in case_ids}
        # A membership of a segment neither listed nor created since was left by a deleted one.
        deleted_before = ids.new_id(SEGMENT, listed_at)[: len(SEGMENT) + 11]
        return sum(
            self._converge(customer_id, segments, hints, whole=True, deleted_before=deleted_before)
            for customer_id in customer_ids
        )

    def build_page(self, segment_id: str, build: int, page: int, start: Key | None) -> str:
        """One page of a backfill: queue the next page first (the walk goes on while this page
        is evaluated), evaluate this page's customers against the segment, count the page
        done once, and mark the segment ready when every page is."""
        segment = self._segments.get(segment_id, consistent=True, counted=False)
        if segment is None or segment.build != build:
            return "superseded"
        if self._segments.page_done(segment_id, build, page):
            return "done before"
        customer_ids, next_key = self._segments.customers_page(BUILD_PAGE, start)
        if next_key is not None:
            self._queue().send(
                {
                    "type": "build",
                    "segment_id": segment_id,
                    "build": build,
                    "page": page + 1,
                    "start": next_key,
                }
            )
        else:
            self._segments.walk_ended(segment_id, build, page + 1)
        for customer_id in customer_ids:
            self._converge(customer_id, [segment], {}, whole=False)
        try:
            self._segments.mark_page_done(segment_id, build, page, self._clock.now())
        except storage.AlreadyExists:
            pass
        except storage.ConditionFailed:
            return "superseded"
        progress = self._segments.progress(segment_id)
        if (
            progress is not None
            and progress[0] == build
            and progress[2] is not None
            and progress[1] >= progress[2]
        ):
            self._segments.mark_ready(segment_id, build)
            return "ready"
        return "page done"

    def drop(self, segment_id: str) -> bool:
        """Remove up to DROP_BATCH members of a deleted segment; True when none is left (else
        another message goes on)."""
        if self._segments.get(segment_id, consistent=True, counted=False) is not None:
            return True  # not deleted after all (a stale record): nothing to drop
        left = DROP_BATCH
        for shard in range(MEMBER_SHARDS):
            for customer_id in self._segments.members_of_shard(segment_id, shard):
                if left == 0:
                    self.segment_deleted(segment_id)
                    return False
                self._leave(customer_id, {segment_id})
                left -= 1
        self._segments.remove_segment_items(segment_id)
        return True

    def forget(self, customer_id: str) -> int:
        """A deleted or erased customer leaves every segment (before the purge of their
        items: the counters count down with each membership)."""
        return self._leave(customer_id, None)

    def _leave(self, customer_id: str, segment_ids: set[str] | None) -> int:
        def attempt() -> int:
            read = self._segments.memberships(customer_id)
            leaves = [s for s in read.joined if segment_ids is None or s in segment_ids]
            review = None if segment_ids is None else read.review_at
            self._segments.write_memberships(customer_id, read, {}, leaves, review)
            return len(leaves)

        return retry_lost_races(attempt, storage.VersionConflict(customer_id), attempts=ATTEMPTS)

    def _converge(
        self,
        customer_id: str,
        segments: list[Segment],
        hints: Mapping,
        *,
        whole: bool,
        deleted_before: str = "",
    ) -> int:
        return retry_lost_races(
            functools.partial(self._converge_once, customer_id, segments, hints, whole, deleted_before),
            storage.VersionConflict(customer_id),
            attempts=ATTEMPTS,
            lost=(storage.VersionConflict, storage.ConditionFailed),
        )

    def _converge_once(
        self, customer_id: str, segments: list[Segment], hints: Mapping, whole: bool, deleted_before: str
    ) -> int:
        now = self._clock.now()
        read = self._segments.memberships(customer_id)
        if not segments and not read.joined:
            return 0  # nothing to evaluate against, nothing to leave
        facts = self._facts(customer_id, segments, hints)
        wanted = {s.id for s in segments if facts is not None and matches(s.rules, facts, now)}
        # Only the segments read: a membership of one created since is its backfill's business.
        known = {s.id for s in segments}
        joins = {sid: now for sid in wanted if sid not in read.joined}
        leaves = [
            sid
            for sid in read.joined
            if sid not in wanted and (sid in known or (whole and sid < deleted_before))
        ]
        moments = [next_change(s.rules, facts, now) for s in segments] if facts is not None else []
        if not whole and read.review_at is not None and read.review_at > now:
            moments.append(read.review_at)
        review = min((m for m in moments if m is not None), default=None)
        self._segments.write_memberships(customer_id, read, joins, leaves, review)
        return len(joins) + len(leaves)

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
