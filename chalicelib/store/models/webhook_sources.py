"""The webhooks table's inbound items (keys `pk`/`sk`, TTL `expires_at`, no stream):

    SOURCES             <source id>             a source: name, kind, secrets, version
    SOURCE#<source id>  DELIVERY#<webhook-id>   a delivery (GSI by_time: newest first per source)
    SOURCE#<source id>  ORDER#<order id>        an external order claimed for one purchase
    SOURCE#<source id>  REFUND#<order id>       a refund's own order id, claimed for one return
    SOURCE#<source id>  TICKET#<ticket id>      an external ticket claimed for one complaint
    SOURCE#<source id>  DELETED                 the source is deleted: its partition is purged

Every item that names a customer carries `customer_pk` = <customer id> and `customer_sk` =
"<pk>|<sk>" (GSI by_customer, keys only), the outbound items too: an erasure finds them all
with one Query (store/webhook_sources.forget_customer). A delivery waiting to be processed
carries them as soon as it is received when its payload names an existing customer."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings

SOURCES_PK = "SOURCES"
SOURCE_PREFIX = "SOURCE#"
DELIVERY_PREFIX = "DELIVERY#"
DELETED_SK = "DELETED"


class WebhookSourceModel(Model):
    """pk SOURCES, sk <source id>: one partition, listed by a Query."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True, default=SOURCES_PK)
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    kind = UnicodeAttribute()
    # [{"secret", "created_at", "expires_at"}] as JSON, newest first (at most three).
    secrets = UnicodeAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


class ByTimeIndex(GlobalSecondaryIndex["InboundDeliveryModel"]):
    class Meta:
        index_name = "by_time"
        projection = AllProjection()

    time_pk = UnicodeAttribute(hash_key=True)
    time_sk = UnicodeAttribute(range_key=True)


class InboundDeliveryModel(Model):
    """pk SOURCE#<source id>, sk DELIVERY#<webhook-id>: created only if absent (the same
    webhook-id again is the same delivery). `payload` is removed once the delivery is final."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    source_id = UnicodeAttribute()
    webhook_id = UnicodeAttribute()
    type = UnicodeAttribute()
    received_at = UnicodeAttribute()
    status = UnicodeAttribute()
    payload = UnicodeAttribute(null=True)  # the validated body as JSON
    customer_id = UnicodeAttribute(null=True)
    interaction_id = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    processed_at = UnicodeAttribute(null=True)
    time_pk = UnicodeAttribute()  # SOURCE#<source id>
    time_sk = UnicodeAttribute()  # <received_at, microseconds>#<webhook-id>
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()

    by_time = ByTimeIndex()


class DeletedSourceModel(Model):
    """pk SOURCE#<source id>, sk DELETED: written in the transaction that deletes the source,
    deleted last by the purge of its partition. A DELETE sent again while it is there queues
    the purge again (the first one's message may never have been sent)."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=DELETED_SK)
    deleted_at = UnicodeAttribute()


class ExternalIdGuardModel(Model):
    """pk SOURCE#<source id>, sk ORDER#<order id>, REFUND#<order id> or TICKET#<ticket id>:
    the interaction that external id is, claimed (attribute_not_exists) before the interaction
    is written. Kept as long as the source (a refund may come months after its order)."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_id = UnicodeAttribute()
    interaction_id = UnicodeAttribute()
    claimed_at = UnicodeAttribute()
    customer_pk = UnicodeAttribute()
    customer_sk = UnicodeAttribute()


class ByCustomerIndex(GlobalSecondaryIndex["WebhookCustomerItemModel"]):
    class Meta:
        index_name = "by_customer"
        projection = KeysOnlyProjection()

    customer_pk = UnicodeAttribute(hash_key=True)
    customer_sk = UnicodeAttribute(range_key=True)


class WebhookCustomerItemModel(Model):
    """Any item of the table by its keys: those that name a customer (inbound or outbound)
    are what an erasure deletes; all of a source's partition, what its deletion does."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)

    by_customer = ByCustomerIndex()
