"""The campaigns tables. `campaigns` (with a stream: a new run's INSERT starts it) holds the
definitions, in one partition listed by a Query, and each campaign's runs under CAMPAIGN#<id>.
`campaign-sends` (no stream: a run writes an item per recipient) holds each run's shards, whose
counters, walk guards and per-customer decisions share a partition, and each customer's log of
marketing messages sent, which every frequency cap reads."""

from __future__ import annotations

from pynamodb.attributes import (
    ListAttribute,
    NumberAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.domain.campaigns import SKIP_REASONS
from chalicelib.store.models.base import TableMeta, settings

CAMPAIGNS_PK = "CAMPAIGNS"
DUE_PK = "due"


class ByNextRunIndex(GlobalSecondaryIndex["CampaignScheduleModel"]):
    class Meta:
        index_name = "by_next_run"
        projection = KeysOnlyProjection()

    due_pk = UnicodeAttribute(hash_key=True)
    next_run_at = UnicodeAttribute(range_key=True)


class CampaignModel(Model):
    """pk CAMPAIGNS, sk <campaign id>: a definition. While it is active with a schedule,
    `due_pk` and `next_run_at` put it in GSI by_next_run, which the minute schedule reads."""

    class Meta(TableMeta):
        table_name = settings.campaigns_table

    pk = UnicodeAttribute(hash_key=True, default=CAMPAIGNS_PK)
    sk = UnicodeAttribute(range_key=True)
    name = UnicodeAttribute()
    segment_id = UnicodeAttribute()
    status = UnicodeAttribute()
    schedule = UnicodeAttribute(null=True)  # Schedule.to_dict() as JSON
    templates = UnicodeAttribute()  # {language: {"subject", "body"}} as JSON
    recommendation = UnicodeAttribute()
    max_messages = NumberAttribute()
    per_days = NumberAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    due_pk = UnicodeAttribute(null=True)
    next_run_at = UnicodeAttribute(null=True)
    version = VersionAttribute()


class CampaignScheduleModel(Model):
    """A definition's schedule state alone, as the minute schedule moves it on: `next_run_at`
    without the version (a derived field; the ETag stays); ending a one-off campaign
    (`finished`) adds to the version, as any change of status does."""

    class Meta(TableMeta):
        table_name = settings.campaigns_table

    pk = UnicodeAttribute(hash_key=True, default=CAMPAIGNS_PK)
    sk = UnicodeAttribute(range_key=True)
    status = UnicodeAttribute(null=True)
    due_pk = UnicodeAttribute(null=True)
    next_run_at = UnicodeAttribute(null=True)
    updated_at = UnicodeAttribute(null=True)
    version = NumberAttribute(null=True)  # CampaignModel's VersionAttribute, added to by hand

    by_next_run = ByNextRunIndex()


class RunModel(Model):
    """pk CAMPAIGN#<campaign id>, sk RUN#<run id>: a run. Its INSERT, on the stream, starts it.
    The counts are its shards' (RunShardModel) until it completes, then copied here."""

    class Meta(TableMeta):
        table_name = settings.campaigns_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    campaign_id = UnicodeAttribute()
    segment_id = UnicodeAttribute()
    status = UnicodeAttribute()
    trigger = UnicodeAttribute()
    scheduled_for = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    started_at = UnicodeAttribute(null=True)
    completed_at = UnicodeAttribute(null=True)
    counts = UnicodeAttribute(null=True)  # the final counts as JSON, once completed


def _counter() -> NumberAttribute:
    return NumberAttribute(default=0)


class RunShardModel(Model):
    """pk RUN#<run id>#<shard>, sk COUNT: the shard's walk, `targeted` growing with each page
    of the segment's shard planned and `walked` 1 once its last page is; sk COUNT#<0–3>: the
    shard's decisions, in DECISION_COUNTERS items (by a hash of the customer id) so that the
    transactions of concurrent decisions seldom meet on one item."""

    class Meta(TableMeta):
        table_name = settings.campaign_sends_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="COUNT")
    targeted = _counter()
    sent = _counter()
    failed = _counter()
    walked = _counter()
    skipped_erased = _counter()
    skipped_no_consent = _counter()
    skipped_no_email = _counter()
    skipped_frequency_cap = _counter()
    skipped_no_recommendation = _counter()


SKIPPED_ATTRIBUTES = {reason: f"skipped_{reason}" for reason in SKIP_REASONS}


class RunPageModel(Model):
    """pk RUN#<run id>#<shard>, sk PAGE#<page>: the plan of that page of the shard's members,
    written once (with its count) before anything is queued from it: the customers it targets
    and where the next page starts. `queued` is 1 once its messages are sent. Deleted by the
    table's TTL."""

    class Meta(TableMeta):
        table_name = settings.campaign_sends_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_ids = ListAttribute(of=UnicodeAttribute, default=list)
    next_key = UnicodeAttribute(null=True)  # the Query's LastEvaluatedKey as JSON
    queued = NumberAttribute(default=0)
    expires_at = NumberAttribute()


class ByOutcomeIndex(GlobalSecondaryIndex["RecipientModel"]):
    class Meta:
        index_name = "by_outcome"
        projection = AllProjection()

    outcome_pk = UnicodeAttribute(hash_key=True)
    customer_id = UnicodeAttribute(range_key=True)


class RecipientModel(Model):
    """pk RUN#<run id>#<shard>, sk RECIPIENT#<customer id>: the run's decision for the
    customer, written once (conditional on its absence). `sending` is a claim: the message is
    being sent; `outcome_pk` ("<run id>#<outcome>#<shard>", GSI by_outcome) is set with the
    final outcome. Deleted by the table's TTL."""

    class Meta(TableMeta):
        table_name = settings.campaign_sends_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_id = UnicodeAttribute()
    outcome = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    locale = UnicodeAttribute(null=True)
    sku = UnicodeAttribute(null=True)
    at = UnicodeAttribute()
    message_id = UnicodeAttribute(null=True)
    outcome_pk = UnicodeAttribute(null=True)
    expires_at = NumberAttribute()

    by_outcome = ByOutcomeIndex()


class SendLogModel(Model):
    """pk CUSTOMER#<customer id>, sk SENDS: when marketing messages went to the customer (the
    newest, within the longest cap window: domain/campaigns.SendLog). Each send changes it at
    the version it read, so two runs cannot both pass one cap."""

    class Meta(TableMeta):
        table_name = settings.campaign_sends_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="SENDS")
    times = ListAttribute(of=UnicodeAttribute, default=list)
    version = VersionAttribute()
