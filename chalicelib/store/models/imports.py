"""The imports table (`crm-<stage>-imports`, TTL on `expires_at`): bulk imports, one partition
per import for the import itself and one per chunk for its rows' outcomes:

    pk                      sk                  item
    IMPORT#<id>             IMPORT              the import: options, status, planning, totals
    IMPORT#<id>#<chunk>     ROW#<row>           the outcome of one row (sparse GSI by_failure:
                                                failed_pk/row, the failed rows in row order)
    IMPORT#<id>#<chunk>     DONE                the chunk's marker: its totals were added once

A chunk's rows are in a partition of their own so that an import's writes spread over many
partitions (DynamoDB takes ~1,000 writes/s per partition); the import item takes one write per
chunk (up to 200 rows) and per planned batch of chunks.
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    JSONAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


def _counter() -> NumberAttribute:
    return NumberAttribute(default=0)


class ImportModel(Model):
    class Meta(TableMeta):
        table_name = settings.imports_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    kind = UnicodeAttribute()
    format = UnicodeAttribute()
    mode = UnicodeAttribute()
    match_on = UnicodeAttribute()
    on_duplicate = UnicodeAttribute()
    dry_run = BooleanAttribute(default=False)
    status = UnicodeAttribute()
    requested_by = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = TTLAttribute()
    object_key = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    size_bytes = NumberAttribute(null=True)
    layout = JSONAttribute(null=True)
    planned = BooleanAttribute(default=False)
    plan_start = NumberAttribute(null=True)
    plan_first_row = NumberAttribute(default=1)
    plan_first_index = NumberAttribute(default=0)
    rows = _counter()
    chunks = _counter()
    chunks_done = _counter()
    processed = _counter()
    created = _counter()
    updated = _counter()
    skipped = _counter()
    failed = _counter()


class ByFailureIndex(GlobalSecondaryIndex["ImportRowModel"]):
    class Meta:
        index_name = "by_failure"
        projection = AllProjection()

    failed_pk = UnicodeAttribute(hash_key=True)
    row = NumberAttribute(range_key=True)


class ImportRowModel(Model):
    class Meta(TableMeta):
        table_name = settings.imports_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    row = NumberAttribute()
    outcome = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    interaction_id = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    # [[field, message], ...] and the row as given: failed rows only.
    errors = JSONAttribute(null=True)
    source = UnicodeAttribute(null=True)
    failed_pk = UnicodeAttribute(null=True)
    expires_at = TTLAttribute()

    by_failure = ByFailureIndex()


class ImportChunkModel(Model):
    class Meta(TableMeta):
        table_name = settings.imports_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    rows = NumberAttribute()
    expires_at = TTLAttribute()
