"""PynamoDB models: the storage shape of every table, a module a table (the customers table's
loyalty items in loyalty.py). The transactions that write them are in store/transactions.py.

Table and index names match infra/resources.json (a test compares them). The customers table
holds several item kinds under generic `pk`/`sk` keys:

    pk                  sk                  item
    CUSTOMER#<id>       PROFILE             the profile (sparse GSI by_created: list_pk/list_sk)
    CUSTOMER#<id>       LOYALTY             loyalty aggregates (sparse GSIs by_tier, by_tier_review)
    CUSTOMER#<id>       APPLIED#<interaction>[#<part>]  what the loyalty consumer applied for one
                                            interaction (or one later part of a large purchase)
    CUSTOMER#<id>       HABIT#<sku>         the customer's habit of buying one SKU (sparse GSI by_habit_due)
    CUSTOMER#<id>       BOUGHT#<sku>        the co-purchase consumer's guard: the SKU's counts are in
    CUSTOMER#<id>       PAIRED#<sku>#<n>    a chunk of the SKU's pairs already counted
    PRODUCT#<sku>       BUYERS              distinct buyers of the SKU (sparse GSI by_buyers)
    PRODUCT#<sku>       PAIR#<other sku>    customers who bought both (sparse GSI by_co_purchases)
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
    SEGMENTS            <segment id>        a segment's definition (segments.py)
    SEGMENT#<id>        BUILD, PAGE#<build>#<page>  its backfill's progress and page guards
    SEGMENT#<id>#COUNT#<n>  COUNT           one shard of its member count
    CUSTOMER#<id>       SEGMENT#<segment id>  a membership (sparse GSI by_segment)
    CUSTOMER#<id>       SEGMENTS            the customer's evaluation marker (GSI by_segment_review)
    MERGE#<merge id>    MERGE               a merge of two customers and its progress (merges.py)
    CUSTOMER#<merged>   MERGED              the alias a merged customer's id becomes
    CUSTOMER#<id>       ALIAS#<merged id>   an id merged into this customer
    CUSTOMER#<id>       MERGE_RUNNING       a running merge involves this customer
    CUSTOMER#<id>       NOT_DUPLICATE#<other>  staff said the two are different people
    PHONE#<e164>        <customer id>       duplicate detection's lookups (duplicates.py): a number,
    EMAILN#<canonical>  <customer id>       a mailbox (dots and +tags removed where ignored),
    NAMEKEY#<words>     <customer id>       a name's folded words, sorted
    CUSTOMER#<id>       POSSIBLE_DUPLICATES  the candidates found when the customer was created

Campaigns have two tables (campaigns.py). `campaigns` (stream: a run's INSERT starts it):

    CAMPAIGNS           <campaign id>       a definition (sparse GSI by_next_run: due_pk/next_run_at)
    CAMPAIGN#<id>       RUN#<run id>        a run, its counts copied in once it completes

`campaign-sends` (no stream; TTL on guards and decisions):

    RUN#<run id>#<n>    COUNT               shard n of the run's counts (targeted, sent, skipped_*, ...)
    RUN#<run id>#<n>    PAGE#<page>         a walked page of member shard n (guard)
    RUN#<run id>#<n>    RECIPIENT#<customer>  the run's decision for the customer (GSI by_outcome)
    CUSTOMER#<id>       SENDS               the marketing messages sent to them (frequency caps)

Jobs (GDPR erasure and export) have a table of their own, keyed by job id, with GSI by_customer
(customer_id, id) and a TTL; its stream (new images) starts them.

Interactions live under their customer: pk customer_id, sk id (a ULID of occurred_at), so one
Query returns a timeline newest first; GSI by_type ("<customer>#<type>", id) filters by type.
"""

from __future__ import annotations

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
from chalicelib.store.models.attempts import ATTEMPT_LIFETIME_S, SEED_PREFIX, AttemptModel
from chalicelib.store.models.campaigns import (
    ByNextRunIndex,
    ByOutcomeIndex,
    CampaignModel,
    CampaignScheduleModel,
    RecipientModel,
    RunModel,
    RunPageModel,
    RunShardModel,
    SendLogModel,
)
from chalicelib.store.models.cases import (
    CaseModel,
    CasesByAssigneeIndex,
    CasesByCustomerIndex,
    CasesByDueIndex,
    CasesByStatusIndex,
)
from chalicelib.store.models.co_purchases import (
    BoughtModel,
    BuyersModel,
    ByBuyersIndex,
    ByCoPurchasesIndex,
    PairModel,
)
from chalicelib.store.models.customers import (
    AuditModel,
    ByCreatedIndex,
    CaseHistoryModel,
    CustomerModel,
    EmailChangeModel,
    EmailLookupModel,
    IdempotencyPointerModel,
    IdentityModel,
    IdentityPointerModel,
    NameTokenModel,
    TombstoneModel,
)
from chalicelib.store.models.duplicates import CandidateAttribute, MatchKeyModel, PossibleDuplicatesModel
from chalicelib.store.models.interactions import ByTypeIndex, InteractionModel, LineItemAttribute
from chalicelib.store.models.jobs import RUNNING_JOB_PREFIX, JobModel, JobsByCustomerIndex, RunningJobModel
from chalicelib.store.models.loyalty import (
    AnonymousAggregatesModel,
    AnonymousHabitModel,
    AppliedModel,
    ByTierIndex,
    ByTierReviewIndex,
    HabitModel,
    HabitsByDueIndex,
    LoyaltyModel,
)
from chalicelib.store.models.merges import (
    AliasModel,
    AliasPointerModel,
    MergeModel,
    MergeRunningModel,
    NotDuplicateModel,
)
from chalicelib.store.models.segments import (
    BySegmentIndex,
    BySegmentReviewIndex,
    CustomerSegmentItem,
    MembershipModel,
    SegmentBuildModel,
    SegmentCountModel,
    SegmentMarkerModel,
    SegmentModel,
    SegmentPageModel,
    SegmentStatusModel,
)

__all__ = [
    "ATTEMPT_LIFETIME_S",
    "RUNNING_JOB_PREFIX",
    "SEED_PREFIX",
    "AliasModel",
    "AliasPointerModel",
    "AnonymousAggregatesModel",
    "AnonymousHabitModel",
    "AppliedModel",
    "AttemptModel",
    "AuditModel",
    "BoughtModel",
    "BuyersModel",
    "ByBuyersIndex",
    "ByCoPurchasesIndex",
    "ByCreatedIndex",
    "ByNextRunIndex",
    "ByOutcomeIndex",
    "BySegmentIndex",
    "BySegmentReviewIndex",
    "ByTierIndex",
    "ByTierReviewIndex",
    "ByTypeIndex",
    "CampaignModel",
    "CampaignScheduleModel",
    "CandidateAttribute",
    "CaseHistoryModel",
    "CaseModel",
    "CasesByAssigneeIndex",
    "CasesByCustomerIndex",
    "CasesByDueIndex",
    "CasesByStatusIndex",
    "CustomerModel",
    "CustomerSegmentItem",
    "EmailChangeModel",
    "EmailLookupModel",
    "HabitModel",
    "HabitsByDueIndex",
    "IdempotencyPointerModel",
    "IdentityModel",
    "IdentityPointerModel",
    "InteractionModel",
    "JobModel",
    "JobsByCustomerIndex",
    "LineItemAttribute",
    "LoyaltyModel",
    "MatchKeyModel",
    "MembershipModel",
    "MergeModel",
    "MergeRunningModel",
    "NameTokenModel",
    "NotDuplicateModel",
    "PairModel",
    "PossibleDuplicatesModel",
    "RecipientModel",
    "RunModel",
    "RunPageModel",
    "RunShardModel",
    "RunningJobModel",
    "SegmentBuildModel",
    "SegmentCountModel",
    "SegmentMarkerModel",
    "SegmentModel",
    "SegmentPageModel",
    "SegmentStatusModel",
    "SendLogModel",
    "TombstoneModel",
]
