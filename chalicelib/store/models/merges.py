"""The customers table's items of merges (the merge issue): the merge and its progress, the
merged customer's alias, the survivor's pointers to the ids merged into it, the marker of a
merge that involves a customer, and two customers recorded as different people."""

from __future__ import annotations

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.store.keys import ALIAS_SK, MERGE_RUNNING_SK, MERGE_SK, customer_pk
from chalicelib.store.models.base import TableMeta, settings


class LookupKeyAttribute(MapAttribute):
    """The keys of a lookup item of the customers table (a name-search entry, say)."""

    pk = UnicodeAttribute()
    sk = UnicodeAttribute()


class MergeModel(Model):
    """pk MERGE#<merge id>, sk MERGE. `step` is the part of the move the job is at; the
    counters are ADDed in the transactions that move the items they count."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=MERGE_SK)
    id = UnicodeAttribute()
    survivor_id = UnicodeAttribute()
    merged_id = UnicodeAttribute()
    status = UnicodeAttribute()  # running | completed
    step = UnicodeAttribute()
    requested_by_subject = UnicodeAttribute()
    requested_by_role = UnicodeAttribute()
    route = UnicodeAttribute()
    created_at = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)
    # Which customer each field of the survivor's profile came from.
    sources = MapAttribute(default=dict)
    interactions = NumberAttribute(default=0)
    cases = NumberAttribute(default=0)
    audit = NumberAttribute(default=0)
    # The merged customer's lookup items the start's transaction had no room for (DynamoDB's
    # 100 items): the job deletes them (step "lookups"). Absent when there are none.
    stale_lookups = ListAttribute(of=LookupKeyAttribute, null=True)
    version = VersionAttribute()


class AliasModel(Model):
    """pk CUSTOMER#<merged id>, sk MERGED: the customer this id was merged into (the end of
    the chain once collapsed)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=ALIAS_SK)
    merged_id = UnicodeAttribute()
    survivor_id = UnicodeAttribute()
    merge_id = UnicodeAttribute()
    merged_at = UnicodeAttribute()


class AliasPointerModel(Model):
    """pk CUSTOMER#<survivor id>, sk ALIAS#<merged id>."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    merged_id = UnicodeAttribute()
    merge_id = UnicodeAttribute()
    merged_at = UnicodeAttribute()


class MergeRunningModel(Model):
    """pk CUSTOMER#<id>, sk MERGE_RUNNING: a merge of this customer (either side) is running."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=MERGE_RUNNING_SK)
    merge_id = UnicodeAttribute()


class NotDuplicateModel(Model):
    """pk CUSTOMER#<id>, sk NOT_DUPLICATE#<other id>, written under both customers at once."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    other_id = UnicodeAttribute()
    recorded_at = UnicodeAttribute()
    recorded_by = UnicodeAttribute()


class MergeProgressModel(Model):
    """The merge item (MergeModel's) as the merge job writes it: its step, status and counters,
    without the version, so that counting a move (ADD) and advancing the step (conditional on
    the step read) never bump or check the version the request wrote it with."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=MERGE_SK)
    status = UnicodeAttribute()
    step = UnicodeAttribute()
    completed_at = UnicodeAttribute(null=True)
    interactions = NumberAttribute(default=0)
    cases = NumberAttribute(default=0)
    audit = NumberAttribute(default=0)


class PartitionItemModel(Model):
    """Any item of the customers table by its keys: what is left under a merged customer's
    partition, read keys only and deleted or moved by kind."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


def running_merge(customer_id: str) -> str | None:
    """The id of the running merge that involves the customer (either side), or None: one
    strongly consistent GetItem of its marker."""
    try:
        return MergeRunningModel.get(
            customer_pk(customer_id), MERGE_RUNNING_SK, consistent_read=True
        ).merge_id
    except DoesNotExist:
        return None
