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
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain.clock import Deadline, parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty import SKUS_PER_PART, Aggregates, Contribution, Score, SkuHabit, parts_of
from chalicelib.store.customers import customer_from_item
from chalicelib.store.models import (
    ANONYMOUS_PREFIX,
    APPLIED_PREFIX,
    AUDIT_PREFIX,
    BATCH_WRITE_ITEMS,
    HABIT_PREFIX,
    IDEMPOTENCY_PREFIX,
    ITEM_LIMIT,
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
    connection,
    customer_pk,
    failed_conditions,
    habit_sk,
    transaction,
)
from chalicelib.store.pagination import Key, collect

BATCH_GET_LIMIT = 100
# One transaction holds at most 100 items: the aggregates and a profile check, then guards and
# habits. A part's change needs its guard and at most 2 × SKUS_PER_PART habits, so it fits.
MAX_ITEMS_PER_WRITE = 98
# ... and at most 4 MB: what guards and habits may take beside an aggregates item (< 400 KB).
MAX_BYTES_PER_WRITE = 3_500_000
assert 1 + 2 * SKUS_PER_PART <= MAX_ITEMS_PER_WRITE

GuardKey = tuple[str, str, int]  # customer id, interaction id, part
HabitKey = tuple[str, str]  # customer id, SKU


@dataclass(frozen=True)
class StoredLoyalty:
    customer_id: str
    # `skus` holds the habits still kept inside the aggregates item (written before habits had
    # items of their own); usually none. `sku_count` counts all.
    aggregates: Aggregates
    tier: str
    score: int
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class StoredHabit:
    habit: SkuHabit
    version: int


@dataclass(frozen=True)
class Guard:
    interaction_id: str
    applied_version: int
    contribution: Contribution | None
    removed: bool
    part: int = 0
    # On part 0: how many parts of the interaction have guards.
    parts: int = 1
    # False for a part read out of a guard written before purchases were split (see
    # `legacy_part`): there is no item to condition on.
    stored: bool = True
    # On such a guard's part 0: the whole purchase it applied (`contribution` is its part 0).
    whole: Contribution | None = None


@dataclass
class Loaded:
    """What one read found; a key that was asked for and is absent maps to None."""

    loyalty: dict[str, StoredLoyalty | None]
    guards: dict[GuardKey, Guard | None]
    habits: dict[HabitKey, StoredHabit | None]

    def update(self, other: Loaded) -> None:
        self.loyalty.update(other.loyalty)
        self.guards.update(other.guards)
        self.habits.update(other.habits)


class CustomerMissing(Exception):
    """The customer's profile does not exist (never did, or was deleted)."""


class LoyaltyChanged(Exception):
    """The aggregates, a habit or a guard changed since they were read."""


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
    interaction_id, _, part = item.sk.removeprefix(APPLIED_PREFIX).partition("#")
    contribution = Contribution.from_dict(json.loads(item.contribution)) if item.contribution else None
    parts, whole = int(item.parts or 1), None
    if contribution is not None and not part and len(contribution.skus) > SKUS_PER_PART:
        # Written before purchases were split: this one guard applied the whole purchase.
        whole = contribution
        split = parts_of(whole)
        contribution, parts = split[0], len(split)
    return Guard(
        interaction_id=interaction_id,
        applied_version=int(item.applied_version),
        contribution=contribution,
        removed=bool(item.removed),
        part=int(part or 0),
        parts=parts,
        whole=whole,
    )


def legacy_part(guard: Guard, part: int) -> Guard | None:
    """Part `part` of an interaction whose guard (part 0) was written before purchases were
    split, and so holds all of a purchase of more than SKUS_PER_PART SKUs: what that guard
    applied for the SKUs of that part. None for a guard that needs no splitting."""
    if guard.whole is None or part == 0:
        return None
    split = parts_of(guard.whole)
    return Guard(
        guard.interaction_id,
        guard.applied_version,
        split[part] if part < len(split) else None,
        guard.removed,
        part=part,
        stored=False,
    )


def _habit(item: HabitModel) -> StoredHabit:
    return StoredHabit(SkuHabit.from_dict(json.loads(item.habit)), int(item.version))


def _customer_of(pk: str) -> str:
    return pk.split("#", 1)[1]


def loyalty_from_item(item: LoyaltyModel) -> StoredLoyalty:
    return _loyalty(item)


def _rfc(moment: datetime) -> str:
    # Fixed width (four-digit years, microseconds), so these strings sort as the times do.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def due_key(habit: SkuHabit) -> str:
    """The by_habit_due sort key: the order of `SkuHabit.order`, as a string."""
    if habit.next_expected_at is not None:
        return f"0#{_rfc(habit.next_expected_at)}#{habit.sku}"
    return f"1#{_rfc(habit.last_purchase_at)}#{habit.sku}"


def _habit_item(customer_id: str, habit: SkuHabit, version: int | None) -> HabitModel:
    item = HabitModel(
        customer_pk(customer_id),
        habit_sk(habit.sku),
        habit=json.dumps(habit.to_dict(), ensure_ascii=False, sort_keys=True),
        habit_pk=customer_id,
        habit_due_sk=due_key(habit),
    )
    if version is not None:
        item.version = version
    return item


def _guard_item(customer_id: str, guard: Guard) -> AppliedModel:
    return AppliedModel(
        customer_pk(customer_id),
        applied_sk(guard.interaction_id, guard.part),
        applied_version=guard.applied_version,
        contribution=(
            json.dumps(guard.contribution.to_dict(), ensure_ascii=False) if guard.contribution else None
        ),
        removed=guard.removed,
        parts=guard.parts if guard.part == 0 and guard.parts > 1 else None,
    )


def _value_bytes(value: Mapping[str, Any]) -> int:
    """DynamoDB's size of an AttributeValue, rounded up (numbers at their widest)."""
    if "S" in value:
        return len(value["S"].encode())
    if "N" in value:
        return 21
    if "M" in value:
        return 3 + sum(len(k.encode()) + _value_bytes(v) + 1 for k, v in value["M"].items())
    if "L" in value:
        return 3 + sum(_value_bytes(v) + 1 for v in value["L"])
    return 1


def _item_bytes(item) -> int:
    return sum(len(name.encode()) + _value_bytes(value) for name, value in item.serialize().items()) + 100


def guard_bytes(customer_id: str, guard: Guard) -> int:
    return _item_bytes(_guard_item(customer_id, guard))


def habit_bytes(customer_id: str, sku: str, name: str) -> int:
    """At least the size of a habit item of that SKU and name, whatever its numbers."""
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    widest = SkuHabit(sku, name, 10**15, 10**15, moment, moment, "int_" + "0" * 60)
    return _item_bytes(_habit_item(customer_id, widest, 10**15))


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
            customer_id, sk = _customer_of(raw["pk"]["S"]), raw["sk"]["S"]
            if sk == LOYALTY_SK:
                loaded.loyalty[customer_id] = _loyalty(LoyaltyModel.from_raw_data(raw))
            elif sk.startswith(APPLIED_PREFIX):
                guard = _guard(AppliedModel.from_raw_data(raw))
                loaded.guards[(customer_id, guard.interaction_id, guard.part)] = guard
            elif sk.startswith(HABIT_PREFIX):
                loaded.habits[(customer_id, sk.removeprefix(HABIT_PREFIX))] = _habit(
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
            guard = _guard(item)
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
        customer exists and the aggregates, each habit and each guard are still what was read."""
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
                    condition = (
                        AppliedModel.pk.does_not_exist()
                        if read is None or not read.stored
                        else AppliedModel.applied_version == read.applied_version
                    )
                    t.save(_guard_item(customer_id, new), condition=condition)
                for read_habit, habit in habits:
                    version = read_habit.version if read_habit else None
                    if habit is not None:
                        t.save(_habit_item(customer_id, habit, version))
                    elif read_habit is not None:
                        t.delete(_habit_item(customer_id, read_habit.habit, version))
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
        """Store a recomputed tier and score; False if the aggregates changed meanwhile. The
        habits are not touched: the score does not depend on them."""
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
            yield _customer_of(item.pk)

    def by_tier(self, tier: str, limit: int, start: Key | None) -> tuple[list[StoredLoyalty], Key | None]:
        rows = LoyaltyModel.by_tier.query(
            tier, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
        )
        items, next_key = collect(rows, limit, _tier_key)
        return [_loyalty(i) for i in items], next_key

    def first_habits(self, customer_id: str, limit: int) -> list[SkuHabit]:
        """The customer's first `limit` habits in `SkuHabit.order`: next expected purchase
        first (one Query of GSI by_habit_due)."""
        rows = HabitModel.by_habit_due.query(customer_id, limit=limit)
        return [_habit(item).habit for item in rows]

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
        found = {h.sku: h for h in (_habit(item).habit for item in rows)}
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
            yield _habit(item).habit

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
