"""PynamoDB models: the storage shape of customers and interactions.

Table and index names match infra/resources.json (a test compares them). The customers table
holds several item kinds under generic `pk`/`sk` keys:

    pk                  sk                  item
    CUSTOMER#<id>       PROFILE             the profile (sparse GSI by_created: list_pk/list_sk)
    CUSTOMER#<id>       LOYALTY             loyalty aggregates (sparse GSIs by_tier, by_tier_review)
    CUSTOMER#<id>       APPLIED#<interaction>[#<part>]  what the loyalty consumer applied for one
                                            interaction (or one later part of a large purchase)
    CUSTOMER#<id>       HABIT#<sku>         the customer's habit of buying one SKU (sparse GSI by_habit_due)
    CUSTOMER#<id>       DELETED             tombstone of a deleted customer (id and time only)
    CUSTOMER#<id>       IDEMPOTENCY#<rec>   pointer to an idempotency record with the customer's data
    ANONYMOUS#<anon id> LOYALTY             an erased customer's loyalty aggregates, anonymised
    ANONYMOUS#<anon id> HABIT#<sku>         one of their habits, anonymised
    CUSTOMER#<id>       AUDIT#<entry>       the audit trail of the customer and their cases
    CUSTOMER#<id>       EMAIL_CHANGE        a pending change of email address (self-service)
    CUSTOMER#<id>       IDENTITY#<iss>#<sub>  pointer to a sign-in identity linked to the customer
    IDENTITY#<iss>#<sub> IDENTITY           which customer a sign-in identity (Cognito user) is
    CASE#<case id>      HISTORY#<seq>       one entry of a case's history (seq: 10 digits)
    EMAIL#<email key>   EMAIL               uniqueness and lookup of an email address
    NAME#<2 letters>    <word>#<id>         one entry per search word of a profile's names

Jobs (GDPR erasure and export) have a table of their own, keyed by job id, with GSI by_customer
(customer_id, id) and a TTL; its stream (new images) starts them.

Interactions live under their customer: pk customer_id, sk id (a ULID of occurred_at), so one
Query returns a timeline newest first; GSI by_type ("<customer>#<type>", id) filters by type.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from chalicelib.config import get_settings
from chalicelib.domain import attempts
from chalicelib.errors import ServiceBusy, TooLargeToStore
from chalicelib.store.keys import (  # noqa: F401 - re-exported: the models' callers import them from here
    ACTIVE_QUEUE,
    ANONYMOUS_PREFIX,
    APPLIED_PREFIX,
    AUDIT_PREFIX,
    CASE_PREFIX,
    CUSTOMERS_LIST_PK,
    EMAIL_CHANGE_SK,
    HABIT_PREFIX,
    HISTORY_PREFIX,
    IDEMPOTENCY_PREFIX,
    IDENTITY_PREFIX,
    LOYALTY_SK,
    PROFILE_SK,
    TIER_REVIEW_PK,
    TOMBSTONE_SK,
    applied_sk,
    case_pk,
    customer_pk,
    email_pk,
    habit_sk,
    history_sk,
    identity_key,
    name_token_keys,
)

_settings = get_settings()


class _Meta:
    region = _settings.region


class ByCreatedIndex(GlobalSecondaryIndex["CustomerModel"]):
    class Meta:
        index_name = "by_created"
        projection = AllProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    list_sk = UnicodeAttribute(range_key=True)


class CustomerModel(Model):
    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    preferred_name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    locale = UnicodeAttribute()
    marketing_consent = BooleanAttribute(default=False)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    attributes = MapAttribute(default=dict)
    search_words = ListAttribute(of=UnicodeAttribute, default=list)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()

    by_created = ByCreatedIndex()


class EmailLookupModel(Model):
    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="EMAIL")
    customer_id = UnicodeAttribute()


class NameTokenModel(Model):
    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_id = UnicodeAttribute()
    # All search words of the profile, so a query can rank and de-duplicate without a read.
    words = ListAttribute(of=UnicodeAttribute)


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
    class Meta(_Meta):
        table_name = _settings.customers_table

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

    class Meta(_Meta):
        table_name = _settings.customers_table

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

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    applied_version = NumberAttribute()
    contribution = UnicodeAttribute(null=True)
    removed = BooleanAttribute(default=False)
    # On part 0: how many parts have guards (a purchase of more than SKUS_PER_PART SKUs).
    parts = NumberAttribute(null=True)


class AuditModel(Model):
    """One audit entry, under the customer it concerns (or the product): pk CUSTOMER#<id> or
    PRODUCT#<sku>, sk AUDIT#<entry id, time-ordered>."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity = UnicodeAttribute()
    entity_id = UnicodeAttribute()
    action = UnicodeAttribute()
    actor_subject = UnicodeAttribute()
    actor_role = UnicodeAttribute()
    route = UnicodeAttribute()
    at = UnicodeAttribute()
    changes = UnicodeAttribute()  # JSON list of {field, before, after}


class TombstoneModel(Model):
    """Left by a deleted customer (no personal data): lets late stream records of the
    customer be told apart from records of a customer that never existed."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="DELETED")
    deleted_at = UnicodeAttribute()
    # Set when the customer was erased (GDPR), not merely deleted: self-service answers 410.
    erased_at = UnicodeAttribute(null=True)


class AttemptModel(Model):
    """The seed of a keyed request's attempts (domain/attempts.py), in the idempotency table
    beside Powertools' records (ids never collide: Powertools' start with "crm-http#"):
    `crm-seed#<record id>` with the time, nonce and body hash of the attempts, and the claims
    of the transactions they committed. It expires with the key, after 24 hours."""

    class Meta(_Meta):
        table_name = _settings.idempotency_table

    id = UnicodeAttribute(hash_key=True)
    expiration = NumberAttribute()
    at = UnicodeAttribute(null=True)
    nonce = UnicodeAttribute(null=True)
    body_sha256 = UnicodeAttribute(null=True)
    claims = UnicodeSetAttribute(null=True)


SEED_PREFIX = "crm-seed#"
ATTEMPT_LIFETIME_S = 24 * 60 * 60


class IdempotencyPointerModel(Model):
    """Names one idempotency record (Powertools table, keyed by a hash) that holds data of the
    customer it sits under: pk CUSTOMER#<id>, sk IDEMPOTENCY#<record id>. Erasure and the purge
    of a deleted customer query these instead of scanning the idempotency table."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    created_at = UnicodeAttribute()


class AnonymousAggregatesModel(Model):
    """What an erased customer leaves for analytics: pk ANONYMOUS#<random id>, sk LOYALTY, the
    loyalty aggregates without the customer id, interaction ids or tier index attributes."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="LOYALTY")
    aggregates = UnicodeAttribute()  # Aggregates.to_dict() as JSON, last_purchase_id removed
    score = NumberAttribute(null=True)
    last_tier = UnicodeAttribute(null=True)  # not `tier`: kept out of the by_tier index
    erased_on = UnicodeAttribute()  # the day only (YYYY-MM-DD)


class EmailChangeModel(Model):
    """A customer's pending change of email address: pk CUSTOMER#<id>, sk EMAIL_CHANGE. A new
    request replaces it (a new nonce: the earlier link stops working), conditional on the
    nonce it replaces, and carries forward the times of the recent requests (the limits); the
    customers stream consumer mails the link for each new nonce; the confirmation marks it
    confirmed; a write that sets the profile's address otherwise marks it withdrawn."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=EMAIL_CHANGE_SK)
    customer_id = UnicodeAttribute()
    email = UnicodeAttribute()
    nonce = UnicodeAttribute()
    requested_at = UnicodeAttribute()
    expires_at = UnicodeAttribute()
    mail_claimed_at = UnicodeAttribute(null=True)
    confirmed_at = UnicodeAttribute(null=True)
    withdrawn_at = UnicodeAttribute(null=True)
    recent_requests = ListAttribute(of=UnicodeAttribute, null=True)


class IdentityModel(Model):
    """Which customer a sign-in identity is: pk IDENTITY#<issuer>#<subject>, sk IDENTITY. Its
    twin, IdentityPointerModel under the customer, lets the customer's identities be listed
    and removed with the customer (one Query, no Scan); both are written in one transaction."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="IDENTITY")
    customer_id = UnicodeAttribute()
    issuer = UnicodeAttribute()
    subject = UnicodeAttribute()
    linked_at = UnicodeAttribute()
    linked_by = UnicodeAttribute()  # "sign-up" (the Cognito trigger) or the staff member


class IdentityPointerModel(Model):
    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    issuer = UnicodeAttribute()
    subject = UnicodeAttribute()
    linked_at = UnicodeAttribute()
    linked_by = UnicodeAttribute()


class AnonymousHabitModel(Model):
    """One habit of an erased customer: pk ANONYMOUS#<the same random id>, sk HABIT#<sku>, the
    SKU and its numbers only (no name, no purchase id), and in no index."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    habit = UnicodeAttribute()  # JSON: sku, times_bought, quantity, first/last purchase


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
    class Meta(_Meta):
        table_name = _settings.interactions_table

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
    version = VersionAttribute()

    by_type = ByTypeIndex()


class _CaseIndex(GlobalSecondaryIndex["CaseModel"]):
    class Meta:
        projection = AllProjection()


class CasesByCustomerIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_customer"

    customer_id = UnicodeAttribute(hash_key=True)
    opened_sk = UnicodeAttribute(range_key=True)


class CasesByDueIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_due"

    queue = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CasesByStatusIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_status"

    status = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CasesByAssigneeIndex(_CaseIndex):
    class Meta(_CaseIndex.Meta):
        index_name = "by_assignee"

    assignee = UnicodeAttribute(hash_key=True)
    due_sk = UnicodeAttribute(range_key=True)


class CaseModel(Model):
    """A complaint case. `due_sk` is "<next deadline>#<id>", so every index lists cases due
    first; `queue` ("active") is set only while the case has a deadline to meet. The history
    lives in CaseHistoryModel items; the case keeps a bounded copy of its latest entries."""

    class Meta(_Meta):
        table_name = _settings.cases_table

    id = UnicodeAttribute(hash_key=True)
    customer_id = UnicodeAttribute()
    opened_sk = UnicodeAttribute()
    queue = UnicodeAttribute(null=True)
    due_sk = UnicodeAttribute()
    status = UnicodeAttribute()
    assignee = UnicodeAttribute(null=True)
    interaction_id = UnicodeAttribute()
    subject = UnicodeAttribute()
    severity = UnicodeAttribute()
    opened_at = UnicodeAttribute()
    first_response_due = UnicodeAttribute()
    resolution_due = UnicodeAttribute()
    escalation_level = NumberAttribute(default=0)
    escalated_for = ListAttribute(of=UnicodeAttribute, default=list)
    contact_status = UnicodeAttribute(null=True)
    acknowledged_at = UnicodeAttribute(null=True)
    resolution = UnicodeAttribute(null=True)
    satisfaction = NumberAttribute(null=True)
    # The acknowledgement, once claimed for sending: the timeline entry's id and the message.
    ack_interaction_id = UnicodeAttribute(null=True)
    ack_subject = UnicodeAttribute(null=True)
    ack_text = UnicodeAttribute(null=True)
    ack_claimed_at = UnicodeAttribute(null=True)
    closed_reason = UnicodeAttribute(null=True)
    # The latest history entries (JSON list of {at, by, from, to, note}), bounded in number and
    # size; `history_count` entries in all, one CaseHistoryModel item each.
    history = UnicodeAttribute()
    history_count = NumberAttribute()
    version = VersionAttribute()

    by_customer = CasesByCustomerIndex()
    by_due = CasesByDueIndex()
    by_status = CasesByStatusIndex()
    by_assignee = CasesByAssigneeIndex()


class CaseHistoryModel(Model):
    """One entry of a case's history: pk CASE#<case id>, sk HISTORY#<seq> (1, 2, ... in the
    order written; the case's version guards the numbering). Written in the same transaction
    as the case change it records."""

    class Meta(_Meta):
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UnicodeAttribute()
    by = UnicodeAttribute()
    from_status = UnicodeAttribute(null=True)
    to_status = UnicodeAttribute(null=True)
    note = UnicodeAttribute(null=True)


def error_code(error: PynamoDBException) -> str | None:
    """DynamoDB's error code, or None when no answer came (a timeout, a broken connection:
    PynamoDB's own `cause_response_code` fails on those)."""
    response = getattr(error.cause, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None


class JobsByCustomerIndex(GlobalSecondaryIndex["JobModel"]):
    class Meta:
        index_name = "by_customer"
        projection = AllProjection()

    customer_id = UnicodeAttribute(hash_key=True)
    id = UnicodeAttribute(range_key=True)


class JobModel(Model):
    """A job: what was asked (kind, customer, by whom), its status and its result. Gone (TTL on
    `expires_at`) seven days after it was asked for, as an export's document is."""

    class Meta(_Meta):
        table_name = _settings.jobs_table

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    customer_id = UnicodeAttribute()
    status = UnicodeAttribute()
    requested_by_subject = UnicodeAttribute()
    requested_by_role = UnicodeAttribute()
    route = UnicodeAttribute()
    created_at = UnicodeAttribute()
    expires_at = TTLAttribute()
    completed_at = UnicodeAttribute(null=True)
    failed_at = UnicodeAttribute(null=True)
    reason = UnicodeAttribute(null=True)
    document_key = UnicodeAttribute(null=True)
    size_bytes = NumberAttribute(null=True)
    slices = NumberAttribute(default=0)

    by_customer = JobsByCustomerIndex()


RUNNING_JOB_PREFIX = "running#"


class RunningJobModel(Model):
    """Which job of a kind runs for a customer: id `running#<kind>#<customer id>`, in the jobs
    table beside the jobs (not in by_customer: it has no customer_id; not queued: it has no
    status). Written with the job, conditional on no other job running; removed when the job
    finishes. So two requests at once never start two jobs of a kind for a customer."""

    class Meta(_Meta):
        table_name = _settings.jobs_table

    id = UnicodeAttribute(hash_key=True)
    job_id = UnicodeAttribute()
    expires_at = TTLAttribute()


def failed_conditions(error: TransactWriteError) -> list[bool]:
    """Which items of a cancelled transaction failed their condition, in request order.
    PynamoDB sends condition checks first, then deletes, puts and updates, so a transaction
    that starts with "the customer exists" finds that check at index 0."""
    return [bool(r) and r.code == "ConditionalCheckFailed" for r in error.cancellation_reasons]


@lru_cache(maxsize=4)
def connection(region: str) -> Connection:
    """One connection (and so one botocore client) per process for transactions: creating a
    client costs a quarter of a second."""
    return Connection(region=region)


ITEM_LIMIT = "DynamoDB's 400 KB item limit"
BATCH_WRITE_ITEMS = 25  # BatchWriteItem's maximum, and what PynamoDB's batch_write sends at once


def _refused_for_size(error: TransactWriteError) -> bool:
    """DynamoDB refuses an item over 400 KB: a Put as a ValidationException of the whole
    request, an Update that grows an item as a cancelled transaction whose reason is a
    ValidationError. Both messages say "... exceeded the maximum allowed size"."""
    if error_code(error) == "ValidationException":
        return _size_message(error.cause_response_message or "")
    return any(
        r is not None and r.code == "ValidationError" and _size_message(r.message or "")
        for r in error.cancellation_reasons
    )


def _size_message(message: str) -> bool:
    # Items: "... exceeded the maximum allowed size". Keys (a safety net: the API bounds what
    # it stores in keys): "Size of hashkey has exceeded the maximum size limit of 2048 bytes",
    # "Aggregated size of all range keys has exceeded the size limit of 1024 bytes" (DynamoDB
    # Local: "Hash primary key values must be under 2048 bytes").
    lowered = message.lower()
    key_limit = "key" in lowered and ("2048" in lowered or "1024" in lowered)
    return "maximum allowed size" in lowered or key_limit


# TransactionConflict: another transaction (or a write) on one of the items was in progress.
# Nothing was written, and the SDK does not retry it: the same request is sent again after a
# full-jitter exponential backoff (25, 50, 100 ms caps), then the caller is told to come back.
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF_BASE_S = 0.025


def _claim(t: TransactWrite) -> str | None:
    """In a keyed request (domain/attempts.py), each transaction also adds its claim to the
    attempts' seed, conditional on its absence. The claim is named by what the transaction
    writes, so the retry of a transaction that committed fails on the claim (alone or with the
    conditions its own items already met) and is known to be done, while any other
    transaction has another name. The claim is an update, which PynamoDB sends last, so the
    items' positions in the cancellation reasons stay as the repositories expect."""
    seed = attempts.current()
    if seed is None:
        return None
    items = [t._condition_check_items, t._delete_items, t._put_items, t._update_items]
    name = attempts.claim_for(json.dumps(items, sort_keys=True, default=str).encode())
    t.update(
        AttemptModel(seed.key),
        actions=[AttemptModel.claims.add({name})],
        condition=~AttemptModel.claims.contains(name),
    )
    return name


def conflicted(error: TransactWriteError) -> bool:
    """Cancelled only because of concurrent transactions on its items: no condition failed,
    no item was invalid, so the same request may pass when sent again."""
    codes = {r.code for r in error.cancellation_reasons if r is not None and r.code != "None"}
    return error_code(error) == "TransactionCanceledException" and codes == {"TransactionConflict"}


@contextmanager
def transaction(
    region: str, too_large: str = f"The change would make an item larger than {ITEM_LIMIT}."
) -> Iterator[TransactWrite]:
    """One TransactWriteItems, as `with transaction(region) as t:`, committed when the block
    ends. DynamoDB's refusal of an item over 400 KB becomes `TooLargeToStore(too_large)`, so no
    caller takes it for a lost race (`too_large` should name the item). A cancellation by
    TransactionConflict alone is sent again (the request is the same: all or nothing, and its
    conditions are evaluated again) up to CONFLICT_ATTEMPTS times, then is `ServiceBusy` (503
    with Retry-After): never mistaken for a failed condition."""
    t = TransactWrite(connection=connection(region))
    yield t
    claim = _claim(t)
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            t._commit()  # what TransactWrite's own __exit__ calls; sent again as it is
            return
        except TransactWriteError as error:
            if claim and failed_conditions(error)[-1:] == [True]:
                # An earlier attempt of this request committed this very transaction: the
                # models are left as a commit leaves them (PynamoDB bumps their versions).
                for model in t._models_for_version_attribute_update:
                    model.update_local_version_attribute()
                return
            if _refused_for_size(error):
                raise TooLargeToStore(too_large) from error
            if not conflicted(error):
                raise
            if attempt == CONFLICT_ATTEMPTS:
                raise ServiceBusy(
                    "Other changes to the same records kept coming first; nothing was written. Retry."
                ) from error
            time.sleep(random.uniform(0, CONFLICT_BACKOFF_BASE_S * 2 ** (attempt - 1)))  # noqa: S311
