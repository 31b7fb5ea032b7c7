"""Interactions: what happened between a customer and us, and the rules that bind them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from chalicelib.domain import money

TYPES = ("purchase", "return", "complaint", "inquiry", "feedback", "visit", "message")
DIRECTIONS = ("inbound", "outbound")
CHANNELS = ("store", "web", "mobile", "phone", "email", "letter", "video", "chat", "social")
SEVERITIES = ("low", "medium", "high", "critical")
MONEY_TYPES = ("purchase", "return")
MAX_FUTURE_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class LineItem:
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True)
class Interaction:
    id: str
    customer_id: str
    type: str
    channel: str
    occurred_at: datetime
    created_at: datetime
    note: str | None = None
    currency: str | None = None
    items: tuple[LineItem, ...] = ()
    purchase_id: str | None = None
    severity: str | None = None
    subject: str | None = None
    direction: str = "inbound"
    # A message's text, and the case it belongs to (acknowledgements of complaints).
    text: str | None = None
    case_id: str | None = None
    # A campaign's message: the campaign and the run that sent it.
    campaign_id: str | None = None
    run_id: str | None = None
    # A purchase or return from an orders webhook: the shop's id of the order (or refund).
    order_id: str | None = None
    # Written by a bulk import (its id): a complaint's case then counts from `occurred_at`.
    import_id: str | None = None
    # On a purchase: how many of each SKU have been returned so far.
    returned: dict[str, int] = field(default_factory=dict)
    version: int = 0
    # Moved here by a merge: the id of the customer it was recorded on (None: never moved).
    merged_from: str | None = None

    @property
    def amount(self) -> Decimal | None:
        if self.type not in MONEY_TYPES:
            return None
        return money.sum_amounts(money.line_total(i.quantity, i.unit_price) for i in self.items)


def quantities(items: tuple[LineItem, ...] | list[LineItem]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in items:
        counts[item.sku] += item.quantity
    return counts


def excess_returns(purchase: Interaction, items: tuple[LineItem, ...]) -> dict[str, int]:
    """SKUs a return asks for beyond what the purchase holds, net of earlier returns."""
    bought = quantities(purchase.items)
    wanted = quantities(items)
    return {
        sku: wanted[sku] - (bought[sku] - purchase.returned.get(sku, 0))
        for sku in wanted
        if wanted[sku] > bought[sku] - purchase.returned.get(sku, 0)
    }


def unreturnable(purchase: Interaction, items: tuple[LineItem, ...]) -> list[tuple[str, str]]:
    """(field, problem) for each line of a return that no purchase state can allow: a SKU the
    purchase does not hold, a unit price above the highest it charged for that SKU (a return
    never refunds more than was paid)."""
    charged: dict[str, Decimal] = {}
    for line in purchase.items:
        charged[line.sku] = max(charged.get(line.sku, line.unit_price), line.unit_price)
    problems = []
    for i, line in enumerate(items):
        if line.sku not in charged:
            problems.append((f"items.{i}.sku", f"is not in purchase {purchase.id}"))
        elif line.unit_price > charged[line.sku]:
            problems.append(
                (f"items.{i}.unit_price", f"exceeds the {charged[line.sku]} purchase {purchase.id} charged")
            )
    return problems


def is_too_far_in_future(occurred_at: datetime, now: datetime) -> bool:
    return occurred_at > now + MAX_FUTURE_SKEW
