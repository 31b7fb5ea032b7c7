"""Key shapes of the tables: importable without PynamoDB (stream consumers need them at
cold start; the models in models.py use them too)."""

from __future__ import annotations

import zlib

CUSTOMERS_LIST_PK = "customers"

ACTIVE_QUEUE = "active"


def customer_pk(customer_id: str) -> str:
    return f"CUSTOMER#{customer_id}"


PROFILE_SK = "PROFILE"


LOYALTY_SK = "LOYALTY"
AUDIT_PREFIX = "AUDIT#"
TOMBSTONE_SK = "DELETED"
APPLIED_PREFIX = "APPLIED#"
HABIT_PREFIX = "HABIT#"
IDEMPOTENCY_PREFIX = "IDEMPOTENCY#"
ANONYMOUS_PREFIX = "ANONYMOUS#"
TIER_REVIEW_PK = "loyalty"
# A customer's pending change of email address (self-service), until confirmed or replaced.
EMAIL_CHANGE_SK = "EMAIL_CHANGE"
IDENTITY_PREFIX = "IDENTITY#"
# Co-purchases: a customer's guards (BOUGHT#<sku>, PAIRED#<sku>#<chunk>) and each SKU's
# anonymous counts under PRODUCT#<sku> (BUYERS, PAIR#<other sku>).
BOUGHT_PREFIX = "BOUGHT#"
PAIRED_PREFIX = "PAIRED#"
# A merge's guard under the merged customer: a chunk of a BOUGHT# SKU's pairs taken back.
UNPAIRED_PREFIX = "UNPAIRED#"
PRODUCT_PREFIX = "PRODUCT#"
BUYERS_SK = "BUYERS"
PAIR_PREFIX = "PAIR#"
# GSI by_buyers is sharded: each SKU's buyer count lives in one of POPULAR_SHARDS partitions
# ("popular#0" … "popular#7"), by a hash of the SKU that is the same in every process (crc32,
# not Python's salted hash()). See popular_pk and store/co_purchases.popular.
POPULAR_PREFIX = "popular#"
POPULAR_SHARDS = 8


def popular_pk(sku: str) -> str:
    return f"{POPULAR_PREFIX}{zlib.crc32(sku.encode()) % POPULAR_SHARDS}"


# Segments: the definitions' partition, each segment's own items, a customer's memberships.
SEGMENTS_PK = "SEGMENTS"
SEGMENT_PREFIX = "SEGMENT#"
SEGMENT_MARKER_SK = "SEGMENTS"
SEGMENT_REVIEW_PREFIX = "segments#"


def segment_pk(segment_id: str) -> str:
    return f"{SEGMENT_PREFIX}{segment_id}"


def membership_sk(segment_id: str) -> str:
    return f"{SEGMENT_PREFIX}{segment_id}"


CASE_PREFIX = "CASE#"
HISTORY_PREFIX = "HISTORY#"


def case_pk(case_id: str) -> str:
    """The partition of a case's history entries in the customers table."""
    return f"{CASE_PREFIX}{case_id}"


def history_sk(seq: int) -> str:
    # Zero-padded, so the entries sort in the order they were written.
    return f"{HISTORY_PREFIX}{seq:010d}"


def applied_sk(interaction_id: str, part: int = 0) -> str:
    """The loyalty guard of an interaction (part 0) or of a later part of a large purchase."""
    return f"{APPLIED_PREFIX}{interaction_id}" + (f"#{part}" if part else "")


def habit_sk(sku: str) -> str:
    return f"{HABIT_PREFIX}{sku}"


def email_pk(email_key: str) -> str:
    return f"EMAIL#{email_key}"


def identity_key(issuer: str, subject: str) -> str:
    """A sign-in identity (an identity provider's `iss` and `sub`): the pk of its lookup item,
    and the sk of the customer's pointer to it."""
    return f"{IDENTITY_PREFIX}{issuer}#{subject}"


def name_token_keys(word: str, customer_id: str) -> tuple[str, str]:
    return f"NAME#{word[:2]}", f"{word}#{customer_id}"


# DynamoDB's partition key limit is 2,048 bytes; a Cognito `sub` is a 36-character UUID.
MAX_IDENTITY_KEY_BYTES = 1024


def storable(issuer: str, subject: str) -> bool:
    """Whether the identity's key fits DynamoDB's key limits (an issuer and subject that do not
    can be linked to no one)."""
    return len(identity_key(issuer, subject).encode()) <= MAX_IDENTITY_KEY_BYTES


# Duplicates and merges (the merge issue). Under the merged customer, CUSTOMER#<merged>:
# MERGED, its alias (which customer it now is). Under the survivor: ALIAS#<merged id>, a
# pointer per id merged into it (chains collapse and erasure follow these, by Query). Under
# either, while a merge involving it runs: MERGE_RUNNING. The merge itself: MERGE#<id>/MERGE.
# Two customers recorded as different people: NOT_DUPLICATE#<other id> under each.
ALIAS_SK = "MERGED"
ALIAS_PREFIX = "ALIAS#"
MERGE_RUNNING_SK = "MERGE_RUNNING"
MERGE_PREFIX = "MERGE#"
MERGE_SK = "MERGE"
NOT_DUPLICATE_PREFIX = "NOT_DUPLICATE#"


def merge_pk(merge_id: str) -> str:
    return f"{MERGE_PREFIX}{merge_id}"


def alias_pointer_sk(merged_id: str) -> str:
    return f"{ALIAS_PREFIX}{merged_id}"


def not_duplicate_sk(other_id: str) -> str:
    return f"{NOT_DUPLICATE_PREFIX}{other_id}"


# Duplicate detection's lookups (non-unique: one item per customer, sk the customer id), kept
# with the profile like the name-search entries; and under a new customer, the candidates
# found when it was created (its stream INSERT is `customer.possible_duplicate`).
PHONE_PREFIX = "PHONE#"
CANONICAL_EMAIL_PREFIX = "EMAILN#"
NAME_KEY_PREFIX = "NAMEKEY#"
POSSIBLE_DUPLICATES_SK = "POSSIBLE_DUPLICATES"
