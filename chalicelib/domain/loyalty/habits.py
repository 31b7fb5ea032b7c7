"""Per-SKU buying habits: how often and how much a customer buys a SKU, and when next.

A habit is kept under `apply` (aggregates.py) like the other aggregates: counts and quantities
are exact sums; its first and last purchase are min/max, which a removed purchase can leave
stale (`next_habit` says so, and the caller recomputes them from the remaining purchases)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.loyalty.contributions import Contribution

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class SkuHabit:
    sku: str
    name: str
    times_bought: int
    quantity: int
    first_purchase_at: datetime
    last_purchase_at: datetime
    # The purchase `name` comes from: with `last_purchase_at`, the key that orders "most recent".
    last_purchase_id: str

    @property
    def mean_interval_days(self) -> float | None:
        if self.times_bought < 2:
            return None
        return (self.last_purchase_at - self.first_purchase_at) / _DAY / (self.times_bought - 1)

    @property
    def next_expected_at(self) -> datetime | None:
        if self.times_bought < 2:
            return None
        return self.last_purchase_at + (self.last_purchase_at - self.first_purchase_at) / (
            self.times_bought - 1
        )

    @property
    def order(self) -> tuple[bool, datetime, str]:
        """How habits are listed: by next expected purchase, then those bought once by their
        purchase time; ties by SKU."""
        return (self.next_expected_at is None, self.next_expected_at or self.last_purchase_at, self.sku)

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "name": self.name,
            "times_bought": self.times_bought,
            "quantity": self.quantity,
            # Microseconds (responses show milliseconds): to_dict/from_dict round-trip exactly.
            "first_purchase_at": to_rfc3339(self.first_purchase_at, timespec="microseconds"),
            "last_purchase_at": to_rfc3339(self.last_purchase_at, timespec="microseconds"),
            "last_purchase_id": self.last_purchase_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SkuHabit:
        return cls(
            sku=data["sku"],
            name=data["name"],
            times_bought=int(data["times_bought"]),
            quantity=int(data["quantity"]),
            first_purchase_at=parse_rfc3339(data["first_purchase_at"]),
            last_purchase_at=parse_rfc3339(data["last_purchase_at"]),
            last_purchase_id=data["last_purchase_id"],
        )


@dataclass(frozen=True)
class Bought:
    """One purchase's view of one SKU: duplicate lines of a SKU count as one purchase."""

    name: str
    quantity: int
    at: datetime
    interaction_id: str

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.at, self.interaction_id)


def bought_in(purchase: Contribution) -> dict[str, Bought]:
    per_sku: dict[str, Bought] = {}
    for line in purchase.lines:
        earlier = per_sku.get(line.sku)
        quantity = line.quantity + (earlier.quantity if earlier else 0)
        per_sku[line.sku] = Bought(line.name, quantity, purchase.occurred_at, purchase.interaction_id)
    return per_sku


def habit_of(sku: str, boughts: list[Bought]) -> SkuHabit:
    newest = max(boughts, key=lambda b: b.key)
    return SkuHabit(
        sku=sku,
        name=newest.name,
        times_bought=len(boughts),
        quantity=sum(b.quantity for b in boughts),
        first_purchase_at=min(b.at for b in boughts),
        last_purchase_at=newest.at,
        last_purchase_id=newest.interaction_id,
    )


def next_habit(
    sku: str, habit: SkuHabit | None, plus: list[Bought], minus: list[Bought]
) -> tuple[SkuHabit | None, bool]:
    """The habit after adding `plus` and removing `minus`, and whether its boundaries are stale
    (a removed purchase held one, and the added ones do not settle it)."""
    existing_left = (habit.times_bought if habit else 0) - len(minus)
    times = existing_left + len(plus)
    if times <= 0:
        return None, False
    quantity = (
        (habit.quantity if habit else 0) + sum(b.quantity for b in plus) - sum(b.quantity for b in minus)
    )
    if habit is None or existing_left == 0:
        return with_counts(habit_of(sku, plus), times, quantity), False
    first_at: datetime | None = habit.first_purchase_at
    newest: tuple[datetime, str] | None = (habit.last_purchase_at, habit.last_purchase_id)
    name = habit.name
    plus_first = min((b.at for b in plus), default=None)
    plus_newest = max(plus, key=lambda b: b.key, default=None)
    if any(b.at == first_at for b in minus):
        first_at = plus_first if plus_first is not None and plus_first <= first_at else None
    elif plus_first is not None:
        first_at = min(first_at, plus_first)
    if any(b.key == newest for b in minus):
        covered = plus_newest is not None and plus_newest.key >= newest
        newest = plus_newest.key if covered else None
        name = plus_newest.name if covered else name
    elif plus_newest is not None and plus_newest.key > newest:
        newest, name = plus_newest.key, plus_newest.name
    if first_at is None or newest is None:
        return with_counts(habit, times, quantity), True
    return SkuHabit(sku, name, times, quantity, first_at, newest[0], newest[1]), False


def with_counts(habit: SkuHabit, times_bought: int, quantity: int) -> SkuHabit:
    return replace(habit, times_bought=times_bought, quantity=quantity)
