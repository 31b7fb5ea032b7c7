"""The aggregates of a customer's purchases and returns, and the algebra that keeps them.

A DynamoDB stream consumer keeps, per interaction, the `Contribution` it has applied, and
applies `contribution(new) - applied` on INSERT/MODIFY and `-applied` on REMOVE. The
aggregates therefore have to be a group under `apply`: sums are exact, and min/max
boundaries are repaired from the still-applied purchases when the one holding them leaves.
A purchase of many SKUs is applied in parts (`parts_of`), each guarded on its own, so that no
write has to update more SKU habits than one transaction holds. `apply` works on the habits
of the SKUs it touches only, so the caller can store each habit apart.
This module is pure; the consumer owns storage and the guard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.loyalty.contributions import Contribution
from chalicelib.domain.loyalty.habits import Bought, SkuHabit, bought_in, habit_of, next_habit, with_counts


class RemainingMismatch(ValueError):
    """`remaining_purchases()` does not account for what the aggregates count: the two were
    read at different moments (another write came between, or the customer's loyalty items
    are being purged)."""


@dataclass(frozen=True)
class Aggregates:
    purchase_count: int = 0
    return_count: int = 0
    # Currency -> purchases minus returns; zero entries are dropped.
    net_spend: Mapping[str, Decimal] = field(default_factory=dict)
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    # SKU -> habit: every habit (from_scratch), or only some of them (see `apply`).
    skus: Mapping[str, SkuHabit] = field(default_factory=dict)
    # How many SKUs have a habit, whether or not `skus` holds them all.
    sku_count: int = 0

    def to_dict(self) -> dict:
        return {
            "purchase_count": self.purchase_count,
            "return_count": self.return_count,
            "net_spend": {currency: str(amount) for currency, amount in sorted(self.net_spend.items())},
            # Microseconds (responses show milliseconds): to_dict/from_dict round-trip exactly.
            "first_purchase_at": _stored(self.first_purchase_at),
            "last_purchase_at": _stored(self.last_purchase_at),
            "skus": {sku: habit.to_dict() for sku, habit in sorted(self.skus.items())},
            "sku_count": self.sku_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Aggregates:
        first, last = data.get("first_purchase_at"), data.get("last_purchase_at")
        skus = {sku: SkuHabit.from_dict(habit) for sku, habit in data.get("skus", {}).items()}
        return cls(
            purchase_count=int(data["purchase_count"]),
            return_count=int(data["return_count"]),
            net_spend={currency: Decimal(amount) for currency, amount in data["net_spend"].items()},
            first_purchase_at=parse_rfc3339(first) if first else None,
            last_purchase_at=parse_rfc3339(last) if last else None,
            skus=skus,
            # Written before habits had items of their own: every habit was in `skus`.
            sku_count=int(data.get("sku_count", len(skus))),
        )


def _signed_amount(contribution: Contribution) -> Decimal:
    # copy_negate is exact; unary minus would round to the context's 28 digits.
    amount = contribution.amount
    return amount if contribution.kind == "purchase" else amount.copy_negate()


def from_scratch(contributions: Iterable[Contribution]) -> Aggregates:
    """The aggregates of a set of contributions, computed directly: the reference for `apply`.

    Contributions may be whole or in parts (`parts_of`); those sharing an interaction id and
    part are deduplicated, the last one winning.
    """
    latest = {c.key: c for c in contributions}
    purchases = [c for c in latest.values() if c.counted]
    returns = [c for c in latest.values() if c.kind == "return"]
    spend: dict[str, list[Decimal]] = {}
    for c in purchases + returns:
        spend.setdefault(c.currency, []).append(_signed_amount(c))
    net = {currency: money.sum_amounts(amounts) for currency, amounts in spend.items()}
    per_sku: dict[str, list[Bought]] = {}
    for purchase in (c for c in latest.values() if c.kind == "purchase"):
        for sku, bought in bought_in(purchase).items():
            per_sku.setdefault(sku, []).append(bought)
    return Aggregates(
        purchase_count=len(purchases),
        return_count=len(returns),
        net_spend={currency: amount for currency, amount in net.items() if amount != 0},
        first_purchase_at=min((p.occurred_at for p in purchases), default=None),
        last_purchase_at=max((p.occurred_at for p in purchases), default=None),
        skus={sku: habit_of(sku, boughts) for sku, boughts in per_sku.items()},
        sku_count=len(per_sku),
    )


def touched_skus(added: Iterable[Contribution], removed: Iterable[Contribution]) -> set[str]:
    """The SKUs whose habits applying `added` and `removed` may change."""
    return {sku for c in (*added, *removed) for sku in c.skus}


def apply(
    aggregates: Aggregates,
    added: Iterable[Contribution],
    removed: Iterable[Contribution],
    remaining_purchases: Callable[[], Iterable[Contribution]] | None = None,
) -> Aggregates:
    """`aggregates` plus `added` minus `removed` (which must be applied ones).

    `aggregates.skus` must hold the habit of every SKU in `touched_skus(added, removed)` that
    has one; habits of other SKUs may be left out (they are carried over unchanged), so a
    caller can keep each habit apart and load only those a change touches. `sku_count` counts
    every habit.

    Counts, spend and quantities are exact sums. First/last purchase times are min/max, which
    removal cannot undo: when a removed purchase held a boundary that neither an added purchase
    nor the absence of other purchases settles, `remaining_purchases()` is called, once, for
    every purchase contribution (or part) still applied for the customer *after* this change;
    `RemainingMismatch` when those do not hold a purchase the aggregates still count.
    Identical contributions in `added` and `removed` cancel out first, so re-applying an
    unchanged interaction is a no-op that never needs it.
    """
    add_counts, remove_counts = Counter(added), Counter(removed)
    added_list = list((add_counts - remove_counts).elements())
    removed_list = list((remove_counts - add_counts).elements())
    if not added_list and not removed_list:
        return aggregates

    added_purchases = [c for c in added_list if c.counted]
    removed_purchases = [c for c in removed_list if c.counted]
    existing_purchases_left = aggregates.purchase_count - len(removed_purchases)
    purchase_count = existing_purchases_left + len(added_purchases)
    return_count = aggregates.return_count + sum(1 for c in added_list if c.kind == "return")
    return_count -= sum(1 for c in removed_list if c.kind == "return")

    net_spend = dict(aggregates.net_spend)
    deltas = [(c.currency, _signed_amount(c)) for c in added_list if c.part == 0]
    deltas += [(c.currency, _signed_amount(c).copy_negate()) for c in removed_list if c.part == 0]
    for currency, delta in deltas:
        net_spend[currency] = money.sum_amounts([net_spend.get(currency, Decimal(0)), delta])
    net_spend = {currency: amount for currency, amount in net_spend.items() if amount != 0}

    stale_customer = False
    added_times = [c.occurred_at for c in added_purchases]
    removed_times = {c.occurred_at for c in removed_purchases}
    first, last = aggregates.first_purchase_at, aggregates.last_purchase_at
    if purchase_count == 0:
        first = last = None
    elif existing_purchases_left == 0:
        first, last = min(added_times), max(added_times)
    else:
        # Other purchases may share a removed boundary's time: only an added purchase beyond it
        # settles the boundary without asking for the remaining purchases.
        if first in removed_times:
            first = min(added_times) if added_times and min(added_times) <= first else None
            stale_customer |= first is None
        if last in removed_times:
            last = max(added_times) if added_times and max(added_times) >= last else None
            stale_customer |= last is None
        if added_times:
            first = None if first is None else min(first, *added_times)
            last = None if last is None else max(last, *added_times)

    added_boughts: dict[str, list[Bought]] = {}
    for c in added_list:
        for sku, bought in bought_in(c).items():
            added_boughts.setdefault(sku, []).append(bought)
    removed_boughts: dict[str, list[Bought]] = {}
    for c in removed_list:
        for sku, bought in bought_in(c).items():
            removed_boughts.setdefault(sku, []).append(bought)

    skus = dict(aggregates.skus)
    sku_count = aggregates.sku_count
    stale_skus: dict[str, SkuHabit] = {}  # right counts, boundaries still to be recomputed
    for sku in added_boughts.keys() | removed_boughts.keys():
        had = skus.pop(sku, None)
        habit, stale = next_habit(sku, had, added_boughts.get(sku, []), removed_boughts.get(sku, []))
        sku_count += (habit is not None) - (had is not None)
        if stale:
            stale_skus[sku] = habit
        elif habit is not None:
            skus[sku] = habit

    if stale_customer or stale_skus:
        if remaining_purchases is None:
            raise ValueError("a removed purchase held a first/last boundary: remaining_purchases is needed")
        remaining = from_scratch(c for c in remaining_purchases() if c.kind == "purchase")
        if stale_customer:
            if remaining.first_purchase_at is None:
                raise RemainingMismatch("remaining_purchases() returned no purchase, yet some remain")
            first, last = remaining.first_purchase_at, remaining.last_purchase_at
        for sku, habit in stale_skus.items():
            recomputed = remaining.skus.get(sku)
            if recomputed is None:
                raise RemainingMismatch(
                    f"remaining_purchases() returned no purchase of SKU {sku!r}, yet it has some"
                )
            skus[sku] = with_counts(recomputed, habit.times_bought, habit.quantity)

    return Aggregates(
        purchase_count=purchase_count,
        return_count=return_count,
        net_spend=net_spend,
        first_purchase_at=first,
        last_purchase_at=last,
        skus=skus,
        sku_count=sku_count,
    )


def _stored(moment: datetime | None) -> str | None:
    return to_rfc3339(moment, timespec="microseconds") if moment else None
