"""The customers table's segment items: the definitions (one partition, listed by a Query),
each segment's member counters and backfill progress (under SEGMENT#<id>), and under each
customer their memberships and the marker that orders the evaluations of them."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.store.keys import SEGMENT_MARKER_SK, SEGMENTS_PK
from chalicelib.store.models.base import TableMeta, settings


class SegmentModel(Model):
    """pk SEGMENTS, sk <segment id>: a definition. `build` counts the backfills its rules
    asked for; the customers stream starts one for each new value."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True, default=SEGMENTS_PK)
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    rules = UnicodeAttribute()  # Rules.to_dict() as JSON
    status = UnicodeAttribute()
    build = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


class SegmentStatusModel(Model):
    """A definition's status alone, written when its build ends (no version: the definition,
    and so its ETag, is unchanged)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True, default=SEGMENTS_PK)
    sk = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute()
    build = NumberAttribute()


class SegmentBuildModel(Model):
    """pk SEGMENT#<id>, sk BUILD: the current backfill's pages done, and their number once the
    walk has reached the last customer."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="BUILD")
    build = NumberAttribute()
    pages_done = NumberAttribute(default=0)
    pages_total = NumberAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)  # when the build started, then each page counted


class SegmentPageModel(Model):
    """pk SEGMENT#<id>, sk PAGE#<build>#<page>: that page of the backfill is counted done.
    Deleted by the table's TTL two weeks later (a backfill takes hours, not weeks)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    expires_at = NumberAttribute()


class SegmentCountModel(Model):
    """pk SEGMENT#<id>#COUNT#<shard>, sk COUNT: members of the segment in that shard, each
    shard a partition of its own. The sum over the shards is the member count; a membership
    write adds to one shard."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    members = NumberAttribute(default=0)


class BySegmentIndex(GlobalSecondaryIndex["MembershipModel"]):
    class Meta:
        index_name = "by_segment"
        projection = IncludeProjection(["joined_at"])

    member_pk = UnicodeAttribute(hash_key=True)
    customer_id = UnicodeAttribute(range_key=True)


class MembershipModel(Model):
    """pk CUSTOMER#<id>, sk SEGMENT#<segment id>: the customer is a member. GSI by_segment
    (`member_pk` = "<segment id>#<shard>") lists a segment's members, shard by shard. Its
    INSERT and REMOVE records are the segment.joined and segment.left events."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    segment_id = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    member_pk = UnicodeAttribute()
    joined_at = UnicodeAttribute()

    by_segment = BySegmentIndex()


class BySegmentReviewIndex(GlobalSecondaryIndex["SegmentMarkerModel"]):
    class Meta:
        index_name = "by_segment_review"
        projection = KeysOnlyProjection()

    segment_review_pk = UnicodeAttribute(hash_key=True)
    segment_review_at = UnicodeAttribute(range_key=True)


class SegmentMarkerModel(Model):
    """pk CUSTOMER#<id>, sk SEGMENTS: how many evaluations of the customer's memberships have
    been written (each is conditional on the count it read, so two cannot interleave), and
    while time alone can change a membership, when (GSI by_segment_review, sharded)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=SEGMENT_MARKER_SK)
    evaluations = NumberAttribute(default=0)
    segment_review_pk = UnicodeAttribute(null=True)
    segment_review_at = UnicodeAttribute(null=True)

    by_segment_review = BySegmentReviewIndex()


class CustomerSegmentItem(Model):
    """Either of the customer's segment items (a membership or the marker), as one Query of
    sk prefix "SEGMENT" reads them."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    segment_id = UnicodeAttribute(null=True)
    joined_at = UnicodeAttribute(null=True)
    evaluations = NumberAttribute(null=True)
    segment_review_at = UnicodeAttribute(null=True)
