"""Segment memberships: each customer's, under CUSTOMER#<id>, written in transactions
conditional on the customer's evaluation marker (two evaluations of one customer cannot
interleave: the later fails and reads again), on the profile (for a join) and on the segment's
definition being the one the evaluation read (its build; or, to leave a deleted segment, none)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from pynamodb.exceptions import TransactWriteError

from chalicelib.domain import storage
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.segments import MEMBER_SHARDS, REVIEW_SHARDS, Change, Member, Memberships, shard_of
from chalicelib.store.keys import (
    PROFILE_SK,
    SEGMENT_MARKER_SK,
    SEGMENT_REVIEW_PREFIX,
    SEGMENTS_PK,
    customer_pk,
    membership_sk,
)
from chalicelib.store.loyalty_items import customer_of
from chalicelib.store.models import CustomerModel
from chalicelib.store.models.segments import (
    CustomerSegmentItem,
    MembershipModel,
    SegmentCountModel,
    SegmentMarkerModel,
    SegmentStatusModel,
)
from chalicelib.store.pagination import Key
from chalicelib.store.segments import count_key
from chalicelib.store.transactions import failed_conditions, transaction

# A transaction holds 100 items: the marker, the profile check, and per change the check of
# the segment's definition, the membership and its counter.
CHANGES_PER_WRITE = 32


class MembershipRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def memberships(self, customer_id: str) -> Memberships:
        """The customer's memberships and marker, strongly consistent (one Query)."""
        joined: dict[str, datetime] = {}
        evaluations, review_at = None, None
        rows = CustomerSegmentItem.query(
            customer_pk(customer_id), CustomerSegmentItem.sk.startswith("SEGMENT"), consistent_read=True
        )
        for row in rows:
            if row.sk == SEGMENT_MARKER_SK:
                evaluations = int(row.evaluations or 0)
                review_at = parse_rfc3339(row.segment_review_at) if row.segment_review_at else None
            elif row.segment_id and row.joined_at:
                joined[row.segment_id] = parse_rfc3339(row.joined_at)
        return Memberships(evaluations, joined, review_at)

    def write_memberships(
        self, customer_id: str, read: Memberships, changes: list[Change], review_at: datetime | None
    ) -> None:
        """Apply one evaluation's changes, CHANGES_PER_WRITE a transaction, each transaction
        conditional on the marker still counting what the one before left. VersionConflict if
        another evaluation came first (`record="segments"`: a definition changed, read them
        again); ConditionFailed if the customer is gone (a join's profile check)."""
        if not changes and review_at == read.review_at:
            return  # nothing to write (and no marker left behind for a customer who is gone)
        evaluations = read.evaluations
        shard = shard_of(customer_id, MEMBER_SHARDS)
        for start in range(0, max(len(changes), 1), CHANGES_PER_WRITE):
            chunk = changes[start : start + CHANGES_PER_WRITE]
            joins = any(c.joined_at is not None for c in chunk)
            checked = [c for c in chunk if c.checked]
            try:
                with transaction(self._region) as t:
                    if joins:
                        t.condition_check(
                            CustomerModel,
                            customer_pk(customer_id),
                            PROFILE_SK,
                            condition=CustomerModel.pk.exists(),
                        )
                    for change in checked:
                        t.condition_check(
                            SegmentStatusModel,
                            SEGMENTS_PK,
                            change.segment_id,
                            condition=SegmentStatusModel.sk.does_not_exist()
                            if change.build is None
                            else SegmentStatusModel.build == change.build,
                        )
                    self._marker(t, customer_id, evaluations, review_at)
                    for change in chunk:
                        self._change(t, customer_id, change, shard)
            except TransactWriteError as error:
                failed = failed_conditions(error)
                checks = failed[: len(checked) + joins]
                if joins and checks[:1] == [True]:
                    raise storage.ConditionFailed(customer_id) from error
                if any(checks):
                    raise storage.VersionConflict(customer_id, record="segments") from error
                if any(failed):
                    raise storage.VersionConflict(customer_id) from error
                raise
            evaluations = (evaluations or 0) + 1

    @staticmethod
    def _marker(t, customer_id: str, evaluations: int | None, review_at: datetime | None) -> None:
        review = (
            [
                SegmentMarkerModel.segment_review_pk.set(
                    f"{SEGMENT_REVIEW_PREFIX}{shard_of(customer_id, REVIEW_SHARDS)}"
                ),
                SegmentMarkerModel.segment_review_at.set(to_rfc3339(review_at)),
            ]
            if review_at is not None
            else [
                SegmentMarkerModel.segment_review_pk.remove(),
                SegmentMarkerModel.segment_review_at.remove(),
            ]
        )
        t.update(
            SegmentMarkerModel(customer_pk(customer_id), SEGMENT_MARKER_SK),
            actions=[SegmentMarkerModel.evaluations.set((evaluations or 0) + 1), *review],
            condition=(
                SegmentMarkerModel.pk.does_not_exist()
                if evaluations is None
                else SegmentMarkerModel.evaluations == evaluations
            ),
        )

    @staticmethod
    def _change(t, customer_id: str, change: Change, shard: int) -> None:
        membership = MembershipModel(customer_pk(customer_id), membership_sk(change.segment_id))
        if change.joined_at is None:
            t.delete(membership, condition=MembershipModel.pk.exists())
        else:
            membership.segment_id = change.segment_id
            membership.customer_id = customer_id
            membership.member_pk = f"{change.segment_id}#{shard}"
            membership.joined_at = to_rfc3339(change.joined_at)
            t.save(membership, condition=MembershipModel.pk.does_not_exist())
        t.update(
            SegmentCountModel(*count_key(change.segment_id, shard)),
            actions=[SegmentCountModel.members.add(-1 if change.joined_at is None else 1)],
        )

    def members(self, segment_id: str, limit: int, start: Key | None) -> tuple[list[Member], Key | None]:
        """A page of the segment's members, shard after shard: one Query of GSI by_segment, and
        one more each time the page reaches the end of a shard before it is full (so a whole
        walk costs its pages plus at most MEMBER_SHARDS Queries, whatever the segment's size)."""
        shard = int(start["shard"]) if start else 0
        key = start.get("key") if start else None
        found: list[Member] = []
        while True:
            rows = MembershipModel.by_segment.query(
                f"{segment_id}#{shard}", limit=limit - len(found), last_evaluated_key=key
            )
            found += [Member(row.customer_id, parse_rfc3339(row.joined_at)) for row in rows]
            key = rows.last_evaluated_key
            if key is not None:
                return found, {"shard": shard, "key": key}
            shard += 1
            if shard == MEMBER_SHARDS:
                return found, None
            if len(found) == limit:
                return found, {"shard": shard, "key": None}

    def members_page(
        self, segment_id: str, shard: int, limit: int, start: Key | None
    ) -> tuple[list[Member], Key | None]:
        """A page of one shard of the segment's members (one Query of GSI by_segment)."""
        rows = MembershipModel.by_segment.query(
            f"{segment_id}#{shard}", limit=limit, last_evaluated_key=start
        )
        found = [Member(row.customer_id, parse_rfc3339(row.joined_at)) for row in rows]
        return found, rows.last_evaluated_key

    def members_of_shard(self, segment_id: str, shard: int) -> Iterator[str]:
        for row in MembershipModel.by_segment.query(
            f"{segment_id}#{shard}", attributes_to_get=["customer_id"]
        ):
            yield row.customer_id

    def due_for_review(self, now: datetime) -> Iterator[str]:
        """Customers a time-driven condition may have changed for by now (GSI by_segment_review)."""
        for shard in range(REVIEW_SHARDS):
            rows = SegmentMarkerModel.by_segment_review.query(
                f"{SEGMENT_REVIEW_PREFIX}{shard}", SegmentMarkerModel.segment_review_at <= to_rfc3339(now)
            )
            for row in rows:
                yield customer_of(row.pk)
