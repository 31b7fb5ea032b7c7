"""Segment repository: definitions, member counts, backfill progress, and the memberships of
each customer, written in transactions conditional on the customer's evaluation marker so two
evaluations of one customer cannot interleave (the later one fails and reads again)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError

from chalicelib.domain import storage
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.segments import MEMBER_SHARDS, REVIEW_SHARDS, Rules, Segment, shard_of
from chalicelib.store.keys import (
    CUSTOMERS_LIST_PK,
    PROFILE_SK,
    SEGMENT_MARKER_SK,
    SEGMENT_PREFIX,
    SEGMENT_REVIEW_PREFIX,
    SEGMENTS_PK,
    customer_pk,
    membership_sk,
    segment_pk,
)
from chalicelib.store.models import CustomerModel
from chalicelib.store.models.segments import (
    CustomerSegmentItem,
    MembershipModel,
    SegmentBuildModel,
    SegmentCountModel,
    SegmentMarkerModel,
    SegmentModel,
    SegmentPageModel,
    SegmentStatusModel,
)
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction

# A transaction holds 100 items: the marker, the profile check, two per membership change.
CHANGES_PER_WRITE = 49
PAGE_GUARD_LIFETIME = timedelta(days=14)


@dataclass(frozen=True)
class Member:
    customer_id: str
    joined_at: datetime


@dataclass(frozen=True)
class Memberships:
    """A customer's memberships as one evaluation read them, with the marker's count."""

    evaluations: int | None  # None: never evaluated
    joined: dict[str, datetime]
    review_at: datetime | None


def _segment(item: SegmentModel, counts: dict[str, int] | None = None) -> Segment:
    return Segment(
        id=item.sk,
        name=item.name,
        description=item.description,
        rules=Rules.from_dict(json.loads(item.rules)),
        status=item.status,
        build=int(item.build),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 1),
        member_count=(counts or {}).get(item.sk, 0),
    )


def _item(segment: Segment) -> SegmentModel:
    return SegmentModel(
        SEGMENTS_PK,
        segment.id,
        name=segment.name,
        description=segment.description,
        rules=json.dumps(segment.rules.to_dict(), sort_keys=True, ensure_ascii=False),
        status=segment.status,
        build=segment.build,
        created_at=to_rfc3339(segment.created_at),
        updated_at=to_rfc3339(segment.updated_at),
    )


def _count_key(segment_id: str, shard: int) -> tuple[str, str]:
    return segment_pk(segment_id), f"COUNT#{shard}"


class SegmentRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    # Definitions

    def add(self, segment: Segment) -> Segment:
        item = _item(segment)
        with transaction(self._region) as t:
            t.save(item, condition=SegmentModel.sk.does_not_exist())
            t.save(SegmentBuildModel(segment_pk(segment.id), build=segment.build, pages_done=0))
        return _segment(item)

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment | None:
        """The definition; with `counted`, its member count too (one more request)."""
        try:
            item = SegmentModel.get(SEGMENTS_PK, segment_id, consistent_read=consistent)
        except DoesNotExist:
            return None
        return _segment(item, self.member_counts([segment_id]) if counted else None)

    def update(self, before: Segment, after: Segment) -> Segment:
        """VersionConflict unless the stored definition is still `before`; a new build resets
        the backfill's progress in the same transaction."""
        item = _item(after)
        item.version = before.version
        with versioned_transaction(self._region, before.id) as t:
            t.save(item)
            if after.build != before.build:
                t.save(SegmentBuildModel(segment_pk(after.id), build=after.build, pages_done=0))
        return _segment(item, {after.id: before.member_count})

    def delete(self, segment: Segment) -> None:
        try:
            SegmentModel(SEGMENTS_PK, segment.id, version=segment.version).delete(
                condition=SegmentModel.version == segment.version
            )
        except DeleteError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise storage.VersionConflict(segment.id) from error
            raise

    def list(self, limit: int, start: Key | None) -> tuple[list[Segment], Key | None]:
        items, next_key = query_page(
            SegmentModel.query,
            SEGMENTS_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=lambda item: item,
        )
        counts = self.member_counts([i.sk for i in items])
        return [_segment(i, counts) for i in items], next_key

    def all(self) -> list[Segment]:
        """Every definition (strongly consistent): what each customer is evaluated against."""
        return [_segment(i) for i in SegmentModel.query(SEGMENTS_PK, consistent_read=True)]

    def member_counts(self, segment_ids: Iterable[str]) -> dict[str, int]:
        """Each segment's members: the sum of its counter shards (BatchGetItem)."""
        ids = list(dict.fromkeys(segment_ids))
        keys = [_count_key(sid, shard) for sid in ids for shard in range(MEMBER_SHARDS)]
        counts = dict.fromkeys(ids, 0)
        for item in SegmentCountModel.batch_get(keys):
            sid = item.pk.removeprefix(SEGMENT_PREFIX)
            counts[sid] = counts.get(sid, 0) + int(item.members)
        return counts

    # Backfill

    def customers_page(self, limit: int, start: Key | None) -> tuple[list[str], Key | None]:
        """One page of every customer's id, oldest first (GSI by_created, keys only)."""
        rows = CustomerModel.by_created.query(
            CUSTOMERS_LIST_PK, limit=limit, last_evaluated_key=start, attributes_to_get=["id"]
        )
        ids = [row.id for row in rows]
        return ids, rows.last_evaluated_key

    def page_done(self, segment_id: str, build: int, page: int) -> bool:
        try:
            SegmentPageModel.get(segment_pk(segment_id), f"PAGE#{build}#{page:08d}", consistent_read=True)
        except DoesNotExist:
            return False
        return True

    def walk_ended(self, segment_id: str, build: int, pages: int) -> None:
        SegmentBuildModel(segment_pk(segment_id)).update(
            actions=[SegmentBuildModel.pages_total.set(pages)], condition=SegmentBuildModel.build == build
        )

    def mark_page_done(self, segment_id: str, build: int, page: int, now: datetime) -> None:
        """Count the page once (AlreadyExists if it was); ConditionFailed if the build is over."""
        guard = SegmentPageModel(
            segment_pk(segment_id),
            f"PAGE#{build}#{page:08d}",
            expires_at=int((now + PAGE_GUARD_LIFETIME).timestamp()),
        )
        try:
            with transaction(self._region) as t:
                t.save(guard, condition=SegmentPageModel.sk.does_not_exist())
                t.update(
                    SegmentBuildModel(segment_pk(segment_id)),
                    actions=[SegmentBuildModel.pages_done.add(1)],
                    condition=SegmentBuildModel.build == build,
                )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise storage.AlreadyExists(guard.sk) from error
            if any(failed):
                raise storage.ConditionFailed(segment_id) from error
            raise

    def progress(self, segment_id: str) -> tuple[int, int, int | None] | None:
        """The current build, its pages done and (once known) its number of pages."""
        try:
            item = SegmentBuildModel.get(segment_pk(segment_id), "BUILD", consistent_read=True)
        except DoesNotExist:
            return None
        total = int(item.pages_total) if item.pages_total is not None else None
        return int(item.build), int(item.pages_done), total

    def mark_ready(self, segment_id: str, build: int) -> bool:
        """The build's end changes no definition: the version (the ETag) stays."""
        try:
            SegmentStatusModel(SEGMENTS_PK, segment_id).update(
                actions=[SegmentStatusModel.status.set("ready")],
                condition=(SegmentStatusModel.build == build) & (SegmentStatusModel.status == "building"),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def remove_segment_items(self, segment_id: str) -> int:
        """The counters, progress and page guards of a deleted segment."""
        removed = 0
        with SegmentCountModel.batch_write() as batch:
            for item in SegmentCountModel.query(segment_pk(segment_id), attributes_to_get=["pk", "sk"]):
                batch.delete(item)
                removed += 1
        return removed

    # Memberships

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
        self,
        customer_id: str,
        read: Memberships,
        joins: dict[str, datetime],
        leaves: Iterable[str],
        review_at: datetime | None,
    ) -> None:
        """Apply one evaluation's changes, in transactions of CHANGES_PER_WRITE, each conditional
        on the marker still counting what this evaluation read (VersionConflict if another
        evaluation came between) and each join on the customer's profile (ConditionFailed: the
        customer is gone)."""
        changes = [(sid, at) for sid, at in sorted(joins.items())] + [(sid, None) for sid in sorted(leaves)]
        if not changes and review_at == read.review_at:
            return  # nothing to write (and no marker left behind for a customer who is gone)
        evaluations = read.evaluations
        shard = shard_of(customer_id, MEMBER_SHARDS)
        for start in range(0, max(len(changes), 1), CHANGES_PER_WRITE):
            chunk = changes[start : start + CHANGES_PER_WRITE]
            try:
                with transaction(self._region) as t:
                    if any(at is not None for _, at in chunk):
                        t.condition_check(
                            CustomerModel,
                            customer_pk(customer_id),
                            PROFILE_SK,
                            condition=CustomerModel.pk.exists(),
                        )
                    self._marker(t, customer_id, evaluations, review_at)
                    for segment_id, at in chunk:
                        self._change(t, customer_id, segment_id, at, shard)
            except TransactWriteError as error:
                failed = failed_conditions(error)
                if failed[:1] == [True] and any(at is not None for _, at in chunk):
                    raise storage.ConditionFailed(customer_id) from error
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
    def _change(t, customer_id: str, segment_id: str, joined_at: datetime | None, shard: int) -> None:
        membership = MembershipModel(customer_pk(customer_id), membership_sk(segment_id))
        if joined_at is None:
            t.delete(membership, condition=MembershipModel.pk.exists())
        else:
            membership.segment_id = segment_id
            membership.customer_id = customer_id
            membership.member_pk = f"{segment_id}#{shard}"
            membership.joined_at = to_rfc3339(joined_at)
            t.save(membership, condition=MembershipModel.pk.does_not_exist())
        t.update(
            SegmentCountModel(*_count_key(segment_id, shard)),
            actions=[SegmentCountModel.members.add(-1 if joined_at is None else 1)],
        )

    def members(self, segment_id: str, limit: int, start: Key | None) -> tuple[list[Member], Key | None]:
        """A page of the segment's members, shard after shard: one Query of GSI by_segment for
        a page within one shard, one more each time the page runs past a shard's end."""
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
                yield row.pk.removeprefix("CUSTOMER#")
