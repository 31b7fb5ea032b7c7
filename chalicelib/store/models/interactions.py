"""The interactions table: a customer's timeline under their id."""

from __future__ import annotations

from pynamodb.attributes import (
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class LineItemAttribute(MapAttribute):
    sku = UnicodeAttribute()
    name = UnicodeAttribute()
    quantity = NumberAttribute()
    # Money is stored as a decimal string: PynamoDB reads numbers back as floats.
    unit_price = UnicodeAttribute()


class ByTypeIndex(GlobalSecondaryIndex["InteractionModel"]):
    class Meta:
        index_name = "by_type"
        projection = AllProjection()

    customer_type = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class InteractionModel(Model):
    class Meta(TableMeta):
        table_name = settings.interactions_table

    customer_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)
    customer_type = UnicodeAttribute()
    type = UnicodeAttribute()
    channel = UnicodeAttribute()
    occurred_at = UnicodeAttribute()
    created_at = UnicodeAttribute()
    note = UnicodeAttribute(null=True)
    currency = UnicodeAttribute(null=True)
    items = ListAttribute(of=LineItemAttribute, null=True)
    amount = UnicodeAttribute(null=True)
    purchase_id = UnicodeAttribute(null=True)
    # On a purchase: quantity returned so far per SKU, guarded by `version`.
    returned = MapAttribute(null=True)
    severity = UnicodeAttribute(null=True)
    subject = UnicodeAttribute(null=True)
    # Items written before `direction` existed are inbound.
    direction = UnicodeAttribute(null=True)
    text = UnicodeAttribute(null=True)
    case_id = UnicodeAttribute(null=True)
    campaign_id = UnicodeAttribute(null=True)
    run_id = UnicodeAttribute(null=True)
    order_id = UnicodeAttribute(null=True)  # purchases and returns from an orders webhook
    import_id = UnicodeAttribute(null=True)  # written by this bulk import
    # Moved by a merge from this customer's timeline (the consumers tell a move from a new one).
    merged_from = UnicodeAttribute(null=True)
    version = VersionAttribute()

    by_type = ByTypeIndex()
