"""What to offer a customer: SKUs due to be bought again (from their habits), SKUs others bought
with theirs (item-to-item collaborative filtering, Linden, Smith and York 2003), and, for a
customer who never bought, the most-bought products. Pure: the service reads the counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.domain.loyalty.habits import SkuHabit

REPURCHASE_DUE = "repurchase_due"
BOUGHT_TOGETHER = "bought_together"
POPULAR = "popular"
# A transaction holds at most 100 items: the profile check, the guard, two per partner.
PARTNERS_PER_WRITE = 48


@dataclass(frozen=True)
class Recommendation:
    sku: str
    reason: str
    because_of: str | None
    due_at: datetime | None
    # repurchase_due: 1 + how close its due time is (0–1); bought_together: the confidence;
    # popular: the SKU's share of the most-bought SKU's buyers.
    score: float


@dataclass(frozen=True)
class Related:
    """SKU `sku` was bought by `co_purchases` of the `buyers` customers of `because_of`."""

    sku: str
    because_of: str
    co_purchases: int
    buyers: int

    @property
    def confidence(self) -> float:
        return min(1.0, self.co_purchases / self.buyers) if self.buyers else 0.0


def confidence(co_purchases: int, buyers: int) -> float:
    return Related("", "", co_purchases, buyers).confidence


def is_repurchase_due(habit: SkuHabit, now: datetime, window_days: int) -> bool:
    """Expected within `window_days` from now, or past by at most twice the mean interval (a
    customer that much later has likely stopped, or bought elsewhere)."""
    due, mean = habit.next_expected_at, habit.mean_interval_days
    if due is None or mean is None:
        return False
    return now - timedelta(days=2 * mean) <= due <= now + timedelta(days=window_days)


def fully_returned(habit: SkuHabit, returned: Mapping[str, int]) -> bool:
    return returned.get(habit.sku, 0) >= habit.quantity


def recommend(
    habits: Iterable[SkuHabit],
    related: Iterable[Related],
    returned: Mapping[str, int],
    active: set[str],
    now: datetime,
    window_days: int,
    also_bought: Iterable[str] = (),
) -> list[Recommendation]:
    """Repurchases due first, soonest first; then SKUs bought with the customer's (never bought
    by them: neither in `habits` nor in `also_bought`) by confidence. Only active SKUs, never
    one whose every unit came back."""
    habits = list(habits)
    bought = {h.sku for h in habits} | set(also_bought)
    kept = [h for h in habits if h.sku in active and not fully_returned(h, returned)]
    due = sorted(
        (h for h in kept if is_repurchase_due(h, now, window_days)),
        key=lambda h: (h.next_expected_at, h.sku),
    )
    horizon = timedelta(days=window_days).total_seconds() or 1.0
    items = [
        Recommendation(
            h.sku,
            REPURCHASE_DUE,
            None,
            h.next_expected_at,
            1 + max(0.0, 1 - abs((h.next_expected_at - now).total_seconds()) / horizon),
        )
        for h in due
    ]
    sources = {h.sku for h in habits if not fully_returned(h, returned)}
    best: dict[str, Related] = {}
    for pair in related:
        if pair.sku in bought or pair.sku not in active or pair.because_of not in sources:
            continue
        seen = best.get(pair.sku)
        if seen is None or (pair.confidence, seen.because_of) > (seen.confidence, pair.because_of):
            best[pair.sku] = pair
    together = sorted(best.values(), key=lambda p: (-p.confidence, p.sku))
    items += [Recommendation(p.sku, BOUGHT_TOGETHER, p.because_of, None, p.confidence) for p in together]
    return items


def popular(most_bought: Iterable[tuple[str, int]], active: set[str]) -> list[Recommendation]:
    """The most-bought active SKUs, most buyers first."""
    ranked = [(sku, buyers) for sku, buyers in most_bought if sku in active]
    top = max((buyers for _, buyers in ranked), default=0) or 1
    return [Recommendation(sku, POPULAR, None, None, buyers / top) for sku, buyers in ranked]


def new_pairs(bought: set[str], sku: str) -> list[str]:
    """The SKUs a first purchase of `sku` pairs with: every other SKU bought before."""
    return sorted(bought - {sku})
