"""Loyalty repository: per-customer aggregates, one item per SKU habit beside them, and the
guards that make applying interaction records exactly-once in effect.

Under CUSTOMER#<id>: LOYALTY (counts, spend, times, tier), HABIT#<sku> (one per SKU bought, so
a customer may buy any number of SKUs) and APPLIED#<interaction>[#<part>] (the guards). Every
write of habits and guards also writes the aggregates item at its version, so that version
orders all of a customer's loyalty writes; habits and guards carry conditions of their own
too, so a read of all three in one BatchGetItem is safe to write back."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain import storage
from chalicelib.domain.clock import Deadline, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty.aggregates import Aggregates
from chalicelib.domain.loyalty.contributions import Contribution
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.loyalty.scoring import Score
from chalicelib.store.customers import customer_from_item
from chalicelib.store.keys import ALIAS_PREFIX
from chalicelib.store.loyalty_items import (
    Guard,
    GuardKey,
    HabitKey,
    Loaded,
    StoredHabit,
    StoredLoyalty,
    customer_of,
    guard_item,
    guard_of,
    habit_item,
    legacy_part,
    loyalty_item,
    loyalty_of,
    review_key,
    stored_habit_of,
    tier_key,
)
from chalicelib.store.models import (
    ANONYMOUS_PREFIX,
    APPLIED_PREFIX,
    AUDIT_PREFIX,
    HABIT_PREFIX,
    IDEMPOTENCY_PREFIX,
    LOYALTY_SK,
    PROFILE_SK,
    TIER_REVIEW_PK,
    TOMBSTONE_SK,
    AnonymousHabitModel,
    AppliedModel,
    CustomerModel,
    HabitModel,
    LoyaltyModel,
    applied_sk,
    customer_pk,
    habit_sk,
)
from chalicelib.store.pagination import Key, collect
from chalicelib.store.transactions import (
    BATCH_WRITE_ITEMS,
    ITEM_LIMIT,
    connection,
    failed_conditions,
    transaction,
)

BATCH_GET_LIMIT = 100


class LoyaltyRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def _batch_get(self, keys: list[tuple[str, str]], *, consistent: bool) -> list[dict]:
        """Raw items of any kind from the customers table, 100 keys a request."""
        table = LoyaltyModel.Meta.table_name
        client = connection(self._region).client
        items: list[dict] = []
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            chunk = [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in unique[start : start + BATCH_GET_LIMIT]]
            request = {table: {"Keys": chunk, "ConsistentRead": consistent}}
            for attempt in range(8):
                response = client.batch_get_item(RequestItems=request)
                items += response.get("Responses", {}).get(table, [])
                request = response.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB left keys unprocessed eight times")
        return items

    def get_with_profile(self, customer_id: str) -> tuple[Customer | None, StoredLoyalty | None]:
        """The profile item and the loyalty aggregates in one BatchGetItem: they share the
        customer's partition."""
        pk = customer_pk(customer_id)
        by_sk = {
            item["sk"]["S"]: item
            for item in self._batch_get([(pk, PROFILE_SK), (pk, LOYALTY_SK)], consistent=True)
        }
        profile = (
            customer_from_item(CustomerModel.from_raw_data(by_sk[PROFILE_SK]))
            if PROFILE_SK in by_sk
            else None
        )
        loyalty = loyalty_of(LoyaltyModel.from_raw_data(by_sk[LOYALTY_SK])) if LOYALTY_SK in by_sk else None
        return profile, loyalty

    def get(self, customer_id: str, *, consistent: bool = False) -> StoredLoyalty | None:
        try:
            return loyalty_of(
                LoyaltyModel.get(customer_pk(customer_id), LOYALTY_SK, consistent_read=consistent)
            )
        except DoesNotExist:
            return None

    def load(
        self,
        customer_ids: Iterable[str],
        guards: Iterable[GuardKey] = (),
        habits: Iterable[HabitKey] = (),
    ) -> Loaded:
        """Aggregates, guards and habits in one strongly consistent BatchGetItem (as many
        requests as 100 keys a request need): every key asked for is in the answer, None when
        absent."""
        customer_ids, guards, habits = list(customer_ids), list(guards), list(habits)
        keys = [(customer_pk(c), LOYALTY_SK) for c in customer_ids]
        keys += [(customer_pk(c), applied_sk(i, p)) for c, i, p in guards]
        keys += [(customer_pk(c), habit_sk(s)) for c, s in habits]
        loaded = Loaded(
            loyalty=dict.fromkeys(customer_ids),
            guards=dict.fromkeys(guards),
            habits=dict.fromkeys(habits),
        )
        for raw in self._batch_get(keys, consistent=True):
            customer_id, sk = customer_of(raw["pk"]["S"]), raw["sk"]["S"]
            if sk == LOYALTY_SK:
                loaded.loyalty[customer_id] = loyalty_of(LoyaltyModel.from_raw_data(raw))
            elif sk.startswith(APPLIED_PREFIX):
                guard = guard_of(AppliedModel.from_raw_data(raw))
                loaded.guards[(customer_id, guard.interaction_id, guard.part)] = guard
            elif sk.startswith(HABIT_PREFIX):
                loaded.habits[(customer_id, sk.removeprefix(HABIT_PREFIX))] = stored_habit_of(
                    HabitModel.from_raw_data(raw)
                )
        return loaded

    def applied_purchases(self, customer_id: str) -> list[Contribution]:
        """Every purchase (part) the aggregates count for a customer (only needed when a
        removed purchase held a first or last purchase time)."""
        guards = {}
        query = AppliedModel.query(
            customer_pk(customer_id), AppliedModel.sk.startswith(APPLIED_PREFIX), consistent_read=True
        )
        for item in query:
            guard = guard_of(item)
            guards[(guard.interaction_id, guard.part)] = guard
        for (interaction_id, _), guard in list(guards.items()):
            for later in range(1, guard.parts if guard.whole else 0):
                guards.setdefault((interaction_id, later), legacy_part(guard, later))
        return [
            g.contribution
            for g in guards.values()
            if g.contribution is not None and g.contribution.kind == "purchase" and not g.removed
        ]

    def save(
        self,
        customer_id: str,
        before: StoredLoyalty | None,
        aggregates: Aggregates,
        scored: Score,
        review_at: datetime | None,
        now: datetime,
        guards: list[tuple[Guard | None, Guard]],
        habits: list[tuple[StoredHabit | None, SkuHabit | None]] = (),
    ) -> None:
        """Write the aggregates (keeping `aggregates.skus` inside the item: normally none), the
        habits (None: the SKU has none left) and the guards in one transaction, while the
        customer exists and the aggregates, each habit and each guard are still what was read:
        ConditionFailed when the customer has no profile, VersionConflict when one of the rest
        changed since it was read."""
        item = loyalty_item(customer_id, aggregates, scored, review_at, now)
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
                    condition = (
                        AppliedModel.pk.does_not_exist()
                        if read is None or not read.stored
                        else AppliedModel.applied_version == read.applied_version
                    )
                    t.save(guard_item(customer_id, new), condition=condition)
                for read_habit, habit in habits:
                    version = read_habit.version if read_habit else None
                    if habit is not None:
                        t.save(habit_item(customer_id, habit, version))
                    elif read_habit is not None:
                        t.delete(habit_item(customer_id, read_habit.habit, version))
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                # Never created, or deleted: the store cannot tell (services/loyalty.py asks).
                raise storage.ConditionFailed(customer_id) from error
            if any(failed):
                raise storage.VersionConflict(customer_id) from error
            raise

    def refresh_tier(
        self, before: StoredLoyalty, scored: Score, review_at: datetime | None, now: datetime
    ) -> bool:
        """Store a recomputed tier and score; False if the aggregates changed meanwhile. The
        habits are not touched: the score does not depend on them."""
        item = loyalty_item(before.customer_id, before.aggregates, scored, review_at, now)
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
            TIER_REVIEW_PK, LoyaltyModel.review_at <= review_key(now)
        ):
            yield customer_of(item.pk)

    def by_tier(self, tier: str, limit: int, start: Key | None) -> tuple[list[StoredLoyalty], Key | None]:
        rows = LoyaltyModel.by_tier.query(
            tier, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
        )
        items, next_key = collect(rows, limit, tier_key)
        return [loyalty_of(i) for i in items], next_key

    def first_habits(self, customer_id: str, limit: int) -> list[SkuHabit]:
        """The customer's first `limit` habits in `SkuHabit.order`: next expected purchase
        first (one Query of GSI by_habit_due)."""
        rows = HabitModel.by_habit_due.query(customer_id, limit=limit)
        return [stored_habit_of(item).habit for item in rows]

    def habits_due_by(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]:
        """The customer's repeat habits next expected by `moment`, the latest first (so those
        due soonest, then those least overdue): one Query of GSI by_habit_due."""
        upper = f"0#{to_rfc3339(moment, timespec='microseconds')}#~"
        rows = HabitModel.by_habit_due.query(
            customer_id, HabitModel.habit_due_sk.between("0#", upper), scan_index_forward=False, limit=limit
        )
        return [stored_habit_of(item).habit for item in rows]

    def habits_expected_after(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]:
        """The customer's repeat habits next expected after `moment`, the soonest first."""
        lower = f"0#{to_rfc3339(moment, timespec='microseconds')}#~"
        rows = HabitModel.by_habit_due.query(
            customer_id, HabitModel.habit_due_sk.between(lower, "0#~"), limit=limit
        )
        return [stored_habit_of(item).habit for item in rows]

    def latest_single_habits(self, customer_id: str, limit: int) -> list[SkuHabit]:
        """The customer's SKUs bought once, the most recently bought first (one Query)."""
        rows = HabitModel.by_habit_due.query(
            customer_id, HabitModel.habit_due_sk.startswith("1#"), scan_index_forward=False, limit=limit
        )
        return [stored_habit_of(item).habit for item in rows]

    def habits_page(
        self, customer_id: str, limit: int, start: Key | None, kept: Mapping[str, SkuHabit]
    ) -> tuple[list[SkuHabit], Key | None]:
        """One page of the customer's habits in SKU order, from their items and from `kept`
        (the habits still inside the aggregates item)."""
        after = start["sk"]["S"].removeprefix(HABIT_PREFIX) if start else None
        rows = HabitModel.query(
            customer_pk(customer_id),
            HabitModel.sk.startswith(HABIT_PREFIX),
            limit=limit + 1,
            last_evaluated_key=start,
        )
        found = {h.sku: h for h in (stored_habit_of(item).habit for item in rows)}
        extra = {sku: h for sku, h in kept.items() if after is None or sku > after}
        merged = sorted((extra | found).values(), key=lambda h: h.sku)
        # Stop where the stored items stop: beyond, a `kept` habit could come before the next one.
        if len(found) > limit:
            merged = [h for h in merged if h.sku <= max(found)]
        page = merged[:limit]
        if len(merged) <= limit:
            return page, None
        return page, {"pk": {"S": customer_pk(customer_id)}, "sk": {"S": habit_sk(page[-1].sku)}}

    def all_habits(self, customer_id: str) -> Iterator[SkuHabit]:
        """Every habit with an item of its own, in SKU order (a strongly consistent Query,
        page by page)."""
        query = HabitModel.query(
            customer_pk(customer_id), HabitModel.sk.startswith(HABIT_PREFIX), consistent_read=True
        )
        for item in query:
            yield stored_habit_of(item).habit

    def with_all_habits(self, customer_id: str) -> StoredLoyalty | None:
        """The aggregates with every habit in `aggregates.skus`."""
        stored = self.get(customer_id, consistent=True)
        if stored is None:
            return None
        habits = dict(stored.aggregates.skus) | {h.sku: h for h in self.all_habits(customer_id)}
        return replace(stored, aggregates=replace(stored.aggregates, skus=habits))

    def copy_habits_anonymously(
        self,
        customer_id: str,
        anonymous_id: str,
        scrub: Callable[[dict], dict],
        previously: set[str] = frozenset(),
    ) -> set[str]:
        """Copy every habit item of the customer, through `scrub`, under ANONYMOUS#<anonymous_id>,
        and delete the copies of `previously` copied SKUs that have no habit any more; returns
        the SKUs copied. Read strongly consistent, so the copy is the habits as of the read
        aggregates if the caller's write conditional on their version then succeeds."""
        pk = f"{ANONYMOUS_PREFIX}{anonymous_id}"
        copied: set[str] = set()
        with AnonymousHabitModel.batch_write() as batch:
            for habit in self.all_habits(customer_id):
                scrubbed = scrub(habit.to_dict())
                batch.save(
                    AnonymousHabitModel(pk, habit_sk(habit.sku), habit=json.dumps(scrubbed, sort_keys=True))
                )
                copied.add(habit.sku)
            for sku in previously - copied:
                batch.delete(AnonymousHabitModel(pk, habit_sk(sku)))
        return copied

    def forget_anonymous_habits(self, anonymous_id: str, skus: Iterable[str]) -> None:
        """Delete habit copies whose anonymous aggregates were never written."""
        with AnonymousHabitModel.batch_write() as batch:
            for sku in skus:
                batch.delete(AnonymousHabitModel(f"{ANONYMOUS_PREFIX}{anonymous_id}", habit_sk(sku)))

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int:
        """Remove a deleted customer's aggregates, habits and guards (with a `deadline`,
        OutOfTime may stop it after a batch: calling again goes on from there)."""
        removed = 0
        with AppliedModel.batch_write() as batch:
            for item in AppliedModel.query(customer_pk(customer_id), attributes_to_get=["pk", "sk"]):
                # The tombstone and the audit trail outlive the customer's data; idempotency
                # pointers go with the records they name (store/idempotency.py); the pointers
                # to ids merged into the customer stay for an erasure, which forgets those ids.
                if item.sk in (PROFILE_SK, TOMBSTONE_SK) or item.sk.startswith(
                    (AUDIT_PREFIX, IDEMPOTENCY_PREFIX, ALIAS_PREFIX)
                ):
                    continue
                batch.delete(item)
                removed += 1
                if deadline is not None and removed % BATCH_WRITE_ITEMS == 0:
                    deadline.check()
        return removed
