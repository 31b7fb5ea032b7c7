"""Segment repository: definitions, member counts and backfill progress. The memberships are
store/segment_members.py's."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError, UpdateError

from chalicelib.domain import storage
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.segments import MEMBER_SHARDS, Progress, Rules, Segment
from chalicelib.store.keys import (
    CUSTOMERS_LIST_PK,
    SEGMENT_PREFIX,
    SEGMENTS_PK,
    segment_pk,
)
from chalicelib.store.models import CustomerModel
from chalicelib.store.models.segments import (
    SegmentBuildModel,
    SegmentCountModel,
    SegmentModel,
    SegmentPageModel,
    SegmentStatusModel,
)
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction

PAGE_GUARD_LIFETIME = timedelta(days=14)


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


def count_key(segment_id: str, shard: int) -> tuple[str, str]:
    """A counter of its own partition: the shards of one segment's count are written at once."""
    return f"{segment_pk(segment_id)}#COUNT#{shard}", "COUNT"


class SegmentRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    # Definitions

    def add(self, segment: Segment) -> Segment:
        item = _item(segment)
        with transaction(self._region) as t:
            t.save(item, condition=SegmentModel.sk.does_not_exist())
            t.save(self._new_build(segment))
        return _segment(item)

    @staticmethod
    def _new_build(segment: Segment) -> SegmentBuildModel:
        at = to_rfc3339(segment.updated_at)
        return SegmentBuildModel(segment_pk(segment.id), build=segment.build, pages_done=0, updated_at=at)

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment | None:
        """The definition; with `counted`, its member count too (one more request)."""
        try:
            item = SegmentModel.get(SEGMENTS_PK, segment_id, consistent_read=consistent)
        except DoesNotExist:
            return None
        return _segment(item, self.member_counts([segment_id], consistent=True) if counted else None)

    def update(self, before: Segment, after: Segment) -> Segment:
        """VersionConflict unless the stored definition is still `before`. Only what a change
        sets is written (the status only with a new build: the end of a build sets it too); a
        new build resets the backfill's progress in the same transaction."""
        item = SegmentModel(SEGMENTS_PK, before.id, version=before.version)
        actions = [
            SegmentModel.name.set(after.name),
            SegmentModel.description.set(after.description)
            if after.description
            else SegmentModel.description.remove(),
            SegmentModel.rules.set(_item(after).rules),
            SegmentModel.updated_at.set(to_rfc3339(after.updated_at)),
        ]
        if after.build != before.build:
            actions += [SegmentModel.build.set(after.build), SegmentModel.status.set(after.status)]
        with versioned_transaction(self._region, before.id) as t:
            t.update(item, actions=actions, condition=SegmentModel.build == before.build)
            if after.build != before.build:
                t.save(self._new_build(after))
        return replace(after, version=before.version + 1, member_count=before.member_count)

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

    def member_counts(self, segment_ids: Iterable[str], *, consistent: bool = False) -> dict[str, int]:
        """Each segment's members: the sum of its counter shards (BatchGetItem)."""
        ids = list(dict.fromkeys(segment_ids))
        keys = [count_key(sid, shard) for sid in ids for shard in range(MEMBER_SHARDS)]
        counts = dict.fromkeys(ids, 0)
        for item in SegmentCountModel.batch_get(keys, consistent_read=consistent):
            sid = item.pk.removeprefix(SEGMENT_PREFIX).split("#", 1)[0]
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
                    actions=[
                        SegmentBuildModel.pages_done.add(1),
                        SegmentBuildModel.updated_at.set(to_rfc3339(now)),
                    ],
                    condition=SegmentBuildModel.build == build,
                )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise storage.AlreadyExists(guard.sk) from error
            if any(failed):
                raise storage.ConditionFailed(segment_id) from error
            raise

    def progress(self, segment_id: str) -> Progress | None:
        try:
            item = SegmentBuildModel.get(segment_pk(segment_id), "BUILD", consistent_read=True)
        except DoesNotExist:
            return None
        total = int(item.pages_total) if item.pages_total is not None else None
        at = parse_rfc3339(item.updated_at) if item.updated_at else None
        return Progress(int(item.build), int(item.pages_done), total, at)

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
        with SegmentPageModel.batch_write() as batch:
            for item in SegmentPageModel.query(segment_pk(segment_id), attributes_to_get=["pk", "sk"]):
                batch.delete(item)
                removed += 1
        with SegmentCountModel.batch_write() as batch:
            for shard in range(MEMBER_SHARDS):
                batch.delete(SegmentCountModel(*count_key(segment_id, shard)))
        return removed
