"""The customers table's co-purchase items: each SKU's anonymous counts (PRODUCT#<sku>) and the
consumer's guards under the customer (CUSTOMER#<id>), which go when the customer goes."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class ByBuyersIndex(GlobalSecondaryIndex["BuyersModel"]):
    class Meta:
        index_name = "by_buyers"
        projection = KeysOnlyProjection()

    popular_pk = UnicodeAttribute(hash_key=True)
    buyers = NumberAttribute(range_key=True)


class BuyersModel(Model):
    """pk PRODUCT#<sku>, sk BUYERS: how many distinct customers bought the SKU. GSI by_buyers
    lists the most-bought SKUs first, in POPULAR_SHARDS partitions (`popular_pk` =
    "popular#<crc32(sku) mod 8>", keys.popular_pk), so no one partition takes every count."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="BUYERS")
    popular_pk = UnicodeAttribute()
    buyers = NumberAttribute(default=0)

    by_buyers = ByBuyersIndex()


class ByCoPurchasesIndex(GlobalSecondaryIndex["PairModel"]):
    class Meta:
        index_name = "by_co_purchases"
        projection = KeysOnlyProjection()

    pair_of = UnicodeAttribute(hash_key=True)
    co_purchases = NumberAttribute(range_key=True)


class PairModel(Model):
    """pk PRODUCT#<sku>, sk PAIR#<other sku>: how many customers bought both. GSI
    by_co_purchases (`pair_of` = the sku) lists a SKU's pairs most bought together first."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    pair_of = UnicodeAttribute()
    co_purchases = NumberAttribute(default=0)

    by_co_purchases = ByCoPurchasesIndex()


class BoughtModel(Model):
    """A customer's guards: sk BOUGHT#<sku> once the SKU's buyer count and all its pairs are
    counted, sk PAIRED#<sku>#<chunk> for each chunk of pairs counted before that (`partners`:
    the other SKUs of the chunk, which a replay reads)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    partners = UnicodeSetAttribute(null=True)
