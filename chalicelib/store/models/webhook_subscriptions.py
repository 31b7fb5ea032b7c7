"""Outbound webhooks in the webhooks table (no stream; TTL `expires_at`), beside the inbound
sources of webhook_sources.py:

    pk                        sk                  item
    SUBSCRIPTIONS             <sub id>            a subscription: URL, event patterns, secrets,
                                                  enabled, failure state
    SUBSCRIPTION#<sub id>     DELIVERY#<dlv id>   one event for one subscription: the exact body,
                                                  status, attempts; GSI by_status
                                                  ("<sub id>#<status>", <dlv id>) and, with a
                                                  customer, GSI by_customer (erasure)
"""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings

SUBSCRIPTIONS_PK = "SUBSCRIPTIONS"
SUBSCRIPTION_COUNT_PK, SUBSCRIPTION_COUNT_SK = "SUBSCRIPTION_COUNT", "COUNT"
SUBSCRIPTION_PREFIX = "SUBSCRIPTION#"
DELIVERY_PREFIX = "DELIVERY#"


class SecretAttribute(MapAttribute):
    value = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = UnicodeAttribute(null=True)


class SubscriptionModel(Model):
    """pk SUBSCRIPTIONS, sk <sub id>: every subscription in one partition, which each event's
    fan-out reads with one Query (at most MAX_SUBSCRIPTIONS of them)."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True, default=SUBSCRIPTIONS_PK)
    sk = UnicodeAttribute(range_key=True)
    url = UnicodeAttribute()
    events = ListAttribute(of=UnicodeAttribute)
    description = UnicodeAttribute(null=True)
    enabled = BooleanAttribute()
    secrets = ListAttribute(of=SecretAttribute)
    failing_since = UnicodeAttribute(null=True)
    disabled_at = UnicodeAttribute(null=True)
    disabled_reason = UnicodeAttribute(null=True)
    disabled_notified = BooleanAttribute(null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


class SubscriptionCountModel(Model):
    """pk SUBSCRIPTION_COUNT, sk COUNT: how many subscriptions there are, moved in the
    transaction that creates or deletes one, so that the bound holds under racing creates."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True, default=SUBSCRIPTION_COUNT_PK)
    sk = UnicodeAttribute(range_key=True, default=SUBSCRIPTION_COUNT_SK)
    count = NumberAttribute(null=True)


class SubscriptionStateModel(Model):
    """A subscription's failure state alone, as deliveries move it: `failing_since` and
    whether its disabling was published, without the version (staff's ETag stays)."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True, default=SUBSCRIPTIONS_PK)
    sk = UnicodeAttribute(range_key=True)
    failing_since = UnicodeAttribute(null=True)
    disabled_notified = BooleanAttribute(null=True)
    enabled = BooleanAttribute(null=True)


class AttemptAttribute(MapAttribute):
    at = UnicodeAttribute()
    status_code = NumberAttribute(null=True)
    duration_ms = NumberAttribute()
    response_excerpt = UnicodeAttribute(null=True)


class DeliveriesByStatusIndex(GlobalSecondaryIndex["DeliveryModel"]):
    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status_pk = UnicodeAttribute(hash_key=True)
    status_sk = UnicodeAttribute(range_key=True)


class DeliveriesByCustomerIndex(GlobalSecondaryIndex["DeliveryModel"]):
    class Meta:
        index_name = "by_customer"
        projection = KeysOnlyProjection()

    customer_pk = UnicodeAttribute(hash_key=True)
    customer_sk = UnicodeAttribute(range_key=True)


class DeliveryModel(Model):
    """pk SUBSCRIPTION#<sub id>, sk DELIVERY#<dlv id>: written once per (subscription, event),
    conditional on its absence; each attempt changes it at the version read."""

    class Meta(TableMeta):
        table_name = settings.webhooks_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    subscription_id = UnicodeAttribute()
    event_id = UnicodeAttribute()
    type = UnicodeAttribute()
    customer_id = UnicodeAttribute(null=True)
    body = UnicodeAttribute()
    status = UnicodeAttribute()
    attempts = ListAttribute(of=AttemptAttribute, default=list)
    attempt_count = NumberAttribute(default=0)
    retries = NumberAttribute(default=0)
    next_attempt_at = UnicodeAttribute(null=True)
    round_started_at = UnicodeAttribute(null=True)  # of a manual retry's or replay's round
    created_at = UnicodeAttribute()
    status_pk = UnicodeAttribute()
    status_sk = UnicodeAttribute()
    customer_pk = UnicodeAttribute(null=True)
    customer_sk = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()
    version = VersionAttribute()

    by_status = DeliveriesByStatusIndex()
    by_customer = DeliveriesByCustomerIndex()
