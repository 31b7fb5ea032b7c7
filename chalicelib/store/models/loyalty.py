"""The customers table's loyalty items: aggregates, per-SKU habits, the consumer's guards, and
what an erased customer leaves anonymously."""

from __future__ import annotations

from pynamodb.attributes import BooleanAttribute, NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class ByTierIndex(GlobalSecondaryIndex["LoyaltyModel"]):
    class Meta:
        index_name = "by_tier"
        projection = AllProjection()

    tier = UnicodeAttribute(hash_key=True)
    tier_sk = UnicodeAttribute(range_key=True)


class ByTierReviewIndex(GlobalSecondaryIndex["LoyaltyModel"]):
    class Meta:
        index_name = "by_tier_review"
        projection = KeysOnlyProjection()

    review_pk = UnicodeAttribute(hash_key=True)
    review_at = UnicodeAttribute(range_key=True)


class LoyaltyModel(Model):
    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="LOYALTY")
    customer_id = UnicodeAttribute()
    # Aggregates.to_dict() as JSON: exact decimals and microsecond times survive the round trip.
    aggregates = UnicodeAttribute()
    tier = UnicodeAttribute()
    # "<score, 3 digits>#<customer id>": the tier's customers by stored score.
    tier_sk = UnicodeAttribute()
    score = NumberAttribute()
    # Set while a tier change is foreseen from recency alone; the daily refresh queries it.
    review_pk = UnicodeAttribute(null=True)
    review_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute()
    version = VersionAttribute()

    by_tier = ByTierIndex()
    by_tier_review = ByTierReviewIndex()


class HabitsByDueIndex(GlobalSecondaryIndex["HabitModel"]):
    class Meta:
        index_name = "by_habit_due"
        projection = AllProjection()

    habit_pk = UnicodeAttribute(hash_key=True)
    habit_due_sk = UnicodeAttribute(range_key=True)


class HabitModel(Model):
    """A customer's habit of buying one SKU: pk CUSTOMER#<id>, sk HABIT#<sku>. Written by the
    loyalty consumer in the transaction of the aggregates it changes with, conditional on
    `version`. GSI by_habit_due (`habit_pk` = the customer id) lists a customer's habits next
    expected purchase first, as the loyalty response shows them."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    # SkuHabit.to_dict() as JSON: microsecond times survive the round trip.
    habit = UnicodeAttribute()
    habit_pk = UnicodeAttribute()
    # "0#<next expected>#<sku>", or "1#<last purchase>#<sku>" for SKUs bought once.
    habit_due_sk = UnicodeAttribute()
    version = VersionAttribute()

    by_habit_due = HabitsByDueIndex()


class AppliedModel(Model):
    """The loyalty consumer's guard for one interaction: which version of it is counted, and
    what it contributed. Written in the same transaction as the aggregates."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    applied_version = NumberAttribute()
    contribution = UnicodeAttribute(null=True)
    removed = BooleanAttribute(default=False)
    # On part 0: how many parts have guards (a purchase of more than SKUS_PER_PART SKUs).
    parts = NumberAttribute(null=True)


class AnonymousAggregatesModel(Model):
    """What an erased customer leaves for analytics: pk ANONYMOUS#<random id>, sk LOYALTY, the
    loyalty aggregates without the customer id, interaction ids or tier index attributes."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="LOYALTY")
    aggregates = UnicodeAttribute()  # Aggregates.to_dict() as JSON, last_purchase_id removed
    score = NumberAttribute(null=True)
    last_tier = UnicodeAttribute(null=True)  # not `tier`: kept out of the by_tier index
    erased_on = UnicodeAttribute()  # the day only (YYYY-MM-DD)


class AnonymousHabitModel(Model):
    """One habit of an erased customer: pk ANONYMOUS#<the same random id>, sk HABIT#<sku>, the
    SKU and its numbers only (no name, no purchase id), and in no index."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    habit = UnicodeAttribute()  # JSON: sku, times_bought, quantity, first/last purchase
