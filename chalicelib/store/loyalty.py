"""Loyalty repository: per-customer aggregates and the guards that make applying interaction
records exactly-once in effect."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain.clock import Deadline, parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty import Aggregates, Contribution, Score
from chalicelib.store.customers import customer_from_item
from chalicelib.store.models import (
    APPLIED_PREFIX,
    AUDIT_PREFIX,
    BATCH_WRITE_ITEMS,
    IDEMPOTENCY_PREFIX,
    ITEM_LIMIT,
    LOYALTY_SK,
    PROFILE_SK,
    TIER_REVIEW_PK,
    TOMBSTONE_SK,
    AppliedModel,
    CustomerModel,
    LoyaltyModel,
    applied_sk,
    connection,
    customer_pk,
    failed_conditions,
    transaction,
)
from chalicelib.store.pagination import Key, collect

BATCH_GET_LIMIT = 100
# One transaction holds at most 100 items: the aggregate, a profile check and the guards.
MAX_GUARDS_PER_WRITE = 98


@dataclass(frozen=True)
class StoredLoyalty:
    customer_id: str
    aggregates: Aggregates
    tier: str
    score: int
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class Guard:
    interaction_id: str
    applied_version: int
    contribution: Contribution | None
    removed: bool


class CustomerMissing(Exception):
    """The customer's profile does not exist (never did, or was deleted)."""


class LoyaltyChanged(Exception):
    """The aggregates or a guard changed since they were read."""


def _loyalty(item: LoyaltyModel) -> StoredLoyalty:
    return StoredLoyalty(
        customer_id=item.customer_id,
        aggregates=Aggregates.from_dict(json.loads(item.aggregates)),
        tier=item.tier,
        score=int(item.score),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version),
    )


def _guard(item: AppliedModel) -> Guard:
    return Guard(
        interaction_id=item.sk.removeprefix(APPLIED_PREFIX),
        applied_version=int(item.applied_version),
        contribution=Contribution.from_dict(json.loads(item.contribution)) if item.contribution else None,
        removed=bool(item.removed),
    )


def loyalty_from_item(item: LoyaltyModel) -> StoredLoyalty:
    return _loyalty(item)


class LoyaltyRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def get_with_profile(self, customer_id: str) -> tuple[Customer | None, StoredLoyalty | None]:
        """The profile item and the loyalty aggregates in one BatchGetItem: they share the
        customer's partition."""
        keys = [{"pk": {"S": customer_pk(customer_id)}, "sk": {"S": sk}} for sk in (PROFILE_SK, LOYALTY_SK)]
        table = LoyaltyModel.Meta.table_name
        client = connection(self._region).client
        items: list[dict] = []
        request = {table: {"Keys": keys, "ConsistentRead": True}}
        for _ in range(5):
            response = client.batch_get_item(RequestItems=request)
            items += response.get("Responses", {}).get(table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                break
        else:
            raise RuntimeError("DynamoDB left keys unprocessed five times")
        by_sk = {item["sk"]["S"]: item for item in items}
        profile = (
            customer_from_item(CustomerModel.from_raw_data(by_sk[PROFILE_SK]))
            if PROFILE_SK in by_sk
            else None
        )
        loyalty = _loyalty(LoyaltyModel.from_raw_data(by_sk[LOYALTY_SK])) if LOYALTY_SK in by_sk else None
        return profile, loyalty

    def get(self, customer_id: str, *, consistent: bool = False) -> StoredLoyalty | None:
        try:
            return _loyalty(
                LoyaltyModel.get(customer_pk(customer_id), LOYALTY_SK, consistent_read=consistent)
            )
        except DoesNotExist:
            return None

    def load(
        self, customer_ids: Iterable[str], interactions: Iterable[tuple[str, str]]
    ) -> tuple[dict[str, StoredLoyalty], dict[tuple[str, str], Guard]]:
        """The aggregates of several customers and the guards of several interactions, read
        with as few BatchGetItem requests as the keys allow (100 keys each)."""
        loyalty_keys = [(customer_pk(cid), LOYALTY_SK) for cid in dict.fromkeys(customer_ids)]
        guard_keys = [(customer_pk(cid), applied_sk(iid)) for cid, iid in dict.fromkeys(interactions)]
        loaded = {item.customer_id: _loyalty(item) for item in LoyaltyModel.batch_get(loyalty_keys)}
        guards = {
            (item.pk.split("#", 1)[1], item.sk.removeprefix(APPLIED_PREFIX)): _guard(item)
            for item in AppliedModel.batch_get(guard_keys)
        }
        return loaded, guards

    def applied_purchases(self, customer_id: str) -> list[Contribution]:
        """Every purchase the aggregates count for a customer (only needed when a removed
        purchase held a first or last purchase time)."""
        found = []
        for item in AppliedModel.query(customer_pk(customer_id), AppliedModel.sk.startswith(APPLIED_PREFIX)):
            guard = _guard(item)
            if guard.contribution is not None and guard.contribution.kind == "purchase" and not guard.removed:
                found.append(guard.contribution)
        return found

    def save(
        self,
        customer_id: str,
        before: StoredLoyalty | None,
        aggregates: Aggregates,
        scored: Score,
        review_at: datetime | None,
        now: datetime,
        guards: list[tuple[Guard | None, Guard]],
    ) -> None:
        """Write the aggregates and the guards in one transaction, while the customer exists,
        the aggregates are still `before` and each guard is still what was read."""
        item = _loyalty_item(customer_id, aggregates, scored, review_at, now)
        if before is not None:
            item.version = before.version
        too_large = f"The loyalty aggregates of customer {customer_id} would be over {ITEM_LIMIT}."
        try:
            with transaction(self._region, too_large) as t:
                t.condition_check(
                    CustomerModel, customer_pk(customer_id), PROFILE_SK, condition=CustomerModel.pk.exists()
                )
                t.save(item)
                for read, new in guards:
                    model = AppliedModel(
                        customer_pk(customer_id),
                        applied_sk(new.interaction_id),
                        applied_version=new.applied_version,
                        contribution=json.dumps(new.contribution.to_dict()) if new.contribution else None,
                        removed=new.removed,
                    )
                    condition = (
                        AppliedModel.pk.does_not_exist()
                        if read is None
                        else AppliedModel.applied_version == read.applied_version
                    )
                    t.save(model, condition=condition)
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise CustomerMissing(customer_id) from error
            if any(failed):
                raise LoyaltyChanged(customer_id) from error
            raise

    def refresh_tier(
        self, before: StoredLoyalty, scored: Score, review_at: datetime | None, now: datetime
    ) -> bool:
        """Store a recomputed tier and score; False if the aggregates changed meanwhile."""
        item = _loyalty_item(before.customer_id, before.aggregates, scored, review_at, now)
        item.version = before.version
        try:
            with transaction(self._region) as t:
                t.save(item)
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            return False
        return True

    def due_for_review(self, now: datetime) -> Iterable[str]:
        """Customers whose tier changes by now through recency alone."""
        for item in LoyaltyModel.by_tier_review.query(
            TIER_REVIEW_PK, LoyaltyModel.review_at <= _review_key(now)
        ):
            yield item.pk.split("#", 1)[1]

    def by_tier(self, tier: str, limit: int, start: Key | None) -> tuple[list[StoredLoyalty], Key | None]:
        rows = LoyaltyModel.by_tier.query(
            tier, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
        )
        items, next_key = collect(rows, limit, _tier_key)
        return [_loyalty(i) for i in items], next_key

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int:
        """Remove a deleted customer's aggregates and guards (with a `deadline`, OutOfTime may
        stop it after a batch: calling again goes on from there)."""
        removed = 0
        with AppliedModel.batch_write() as batch:
            for item in AppliedModel.query(customer_pk(customer_id), attributes_to_get=["pk", "sk"]):
                # The tombstone and the audit trail outlive the customer's data; idempotency
                # pointers go with the records they name (store/idempotency.py).
                if item.sk in (PROFILE_SK, TOMBSTONE_SK) or item.sk.startswith(
                    (AUDIT_PREFIX, IDEMPOTENCY_PREFIX)
                ):
                    continue
                batch.delete(item)
                removed += 1
                if deadline is not None and removed % BATCH_WRITE_ITEMS == 0:
                    deadline.check()
        return removed


def _review_key(moment: datetime) -> str:
    return to_rfc3339(moment)


def _loyalty_item(
    customer_id: str, aggregates: Aggregates, scored: Score, review_at: datetime | None, now: datetime
) -> LoyaltyModel:
    return LoyaltyModel(
        customer_pk(customer_id),
        LOYALTY_SK,
        customer_id=customer_id,
        aggregates=json.dumps(aggregates.to_dict(), sort_keys=True),
        tier=scored.tier,
        tier_sk=f"{scored.score:03d}#{customer_id}",
        score=scored.score,
        review_pk=TIER_REVIEW_PK if review_at else None,
        review_at=_review_key(review_at) if review_at else None,
        updated_at=to_rfc3339(now),
    )


def _tier_key(item: LoyaltyModel) -> Key:
    return {
        "pk": {"S": item.pk},
        "sk": {"S": item.sk},
        "tier": {"S": item.tier},
        "tier_sk": {"S": item.tier_sk},
    }
