"""The loyalty items under CUSTOMER#<id>, as the repository (store/loyalty.py) reads and
writes them: LOYALTY (counts, spend, times, tier), HABIT#<sku> (one per SKU bought) and
APPLIED#<interaction>[#<part>] (the guards); what each holds, how it is built and read, and
how many bytes it takes in a transaction."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.loyalty.aggregates import Aggregates
from chalicelib.domain.loyalty.contributions import SKUS_PER_PART, Contribution, parts_of
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.loyalty.scoring import Score
from chalicelib.store.attribute_values import size_of
from chalicelib.store.models import (
    APPLIED_PREFIX,
    LOYALTY_SK,
    TIER_REVIEW_PK,
    AppliedModel,
    HabitModel,
    LoyaltyModel,
    applied_sk,
    customer_pk,
    habit_sk,
)
from chalicelib.store.pagination import Key

# One transaction holds at most 100 items: the aggregates and a profile check, then guards and
# habits. A part's change needs its guard and at most 2 × SKUS_PER_PART habits, so it fits.
MAX_ITEMS_PER_WRITE = 98
# ... and at most 4 MB: what guards and habits may take beside an aggregates item (< 400 KB).
MAX_BYTES_PER_WRITE = 3_500_000
if 1 + 2 * SKUS_PER_PART > MAX_ITEMS_PER_WRITE:
    raise RuntimeError(
        f"SKUS_PER_PART {SKUS_PER_PART} makes a part's change too many items for a transaction"
    )

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


def loyalty_of(item: LoyaltyModel) -> StoredLoyalty:
    return StoredLoyalty(
        customer_id=item.customer_id,
        aggregates=Aggregates.from_dict(json.loads(item.aggregates)),
        tier=item.tier,
        score=int(item.score),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version),
    )


def guard_of(item: AppliedModel) -> Guard:
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


def stored_habit_of(item: HabitModel) -> StoredHabit:
    return StoredHabit(SkuHabit.from_dict(json.loads(item.habit)), int(item.version))


def customer_of(pk: str) -> str:
    return pk.split("#", 1)[1]


def due_key(habit: SkuHabit) -> str:
    """The by_habit_due sort key: the order of `SkuHabit.order`, as a string (microseconds, so
    that these keys sort as the times do)."""
    if habit.next_expected_at is not None:
        return f"0#{to_rfc3339(habit.next_expected_at, timespec='microseconds')}#{habit.sku}"
    return f"1#{to_rfc3339(habit.last_purchase_at, timespec='microseconds')}#{habit.sku}"


def habit_item(customer_id: str, habit: SkuHabit, version: int | None) -> HabitModel:
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


def guard_item(customer_id: str, guard: Guard) -> AppliedModel:
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


def _item_bytes(item) -> int:
    return sum(len(name.encode()) + size_of(value) for name, value in item.serialize().items()) + 100


def guard_bytes(customer_id: str, guard: Guard) -> int:
    return _item_bytes(guard_item(customer_id, guard))


def habit_bytes(customer_id: str, sku: str, name: str) -> int:
    """At least the size of a habit item of that SKU and name, whatever its numbers."""
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    widest = SkuHabit(sku, name, 10**15, 10**15, moment, moment, "int_" + "0" * 60)
    return _item_bytes(habit_item(customer_id, widest, 10**15))


def review_key(moment: datetime) -> str:
    return to_rfc3339(moment)


def loyalty_item(
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
        review_at=review_key(review_at) if review_at else None,
        updated_at=to_rfc3339(now),
    )


def tier_key(item: LoyaltyModel) -> Key:
    return {
        "pk": {"S": item.pk},
        "sk": {"S": item.sk},
        "tier": {"S": item.tier},
        "tier_sk": {"S": item.tier_sk},
    }
