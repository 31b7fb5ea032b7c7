"""Response models of loyalty: a customer's score and tier, aggregates and purchase habits."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from chalicelib.api.schemas import MoneyOut, Out
from chalicelib.domain import money
from chalicelib.domain.clock import to_rfc3339

if TYPE_CHECKING:
    from chalicelib.domain.loyalty.habits import SkuHabit
    from chalicelib.services.loyalty import LoyaltyView

Tier = Literal["bronze", "silver", "gold", "platinum"]


class LoyaltySummary(Out):
    score: int = Field(ge=0, le=100)
    tier: Tier
    recency_days: int | None = Field(description="whole days since the last purchase; null without one")
    frequency: int = Field(description="purchases counted")
    monetary: MoneyOut = Field(description="net spend in the stage's base currency")
    updated_at: str | None = Field(description="when the aggregates last changed")

    @classmethod
    def of(cls, view: LoyaltyView, base_currency: str) -> dict:
        return {
            "score": view.score.score,
            "tier": view.score.tier,
            "recency_days": view.score.recency_days,
            "frequency": view.aggregates.purchase_count,
            "monetary": money.format_money(
                view.aggregates.net_spend.get(base_currency, Decimal(0)), base_currency
            ),
            "updated_at": to_rfc3339(view.updated_at) if view.updated_at else None,
        }


class PurchaseHabit(Out):
    sku: str
    name: str
    times_bought: int
    quantity: int
    first_purchase_at: str
    last_purchase_at: str
    mean_interval_days: float | None
    next_expected_at: str | None

    @classmethod
    def of(cls, h: SkuHabit) -> dict:
        return {
            "sku": h.sku,
            "name": h.name,
            "times_bought": h.times_bought,
            "quantity": h.quantity,
            "first_purchase_at": to_rfc3339(h.first_purchase_at),
            "last_purchase_at": to_rfc3339(h.last_purchase_at),
            "mean_interval_days": round(h.mean_interval_days, 2)
            if h.mean_interval_days is not None
            else None,
            "next_expected_at": to_rfc3339(h.next_expected_at) if h.next_expected_at else None,
        }


class HabitPage(Out):
    items: list[PurchaseHabit]
    next_cursor: str | None


class LoyaltyDetail(LoyaltySummary):
    recency_score: int = Field(ge=1, le=5)
    frequency_score: int = Field(ge=1, le=5)
    monetary_score: int = Field(ge=1, le=5)
    net_spend: dict[str, MoneyOut]
    returns: int
    sku_count: int = Field(description="how many SKUs the customer has bought (one habit each)")
    purchase_habits: list[PurchaseHabit] = Field(
        description=(
            "next expected purchase first, then SKUs bought once by their purchase; the first 100 "
            "of sku_count in GET /customers/{customer_id}/loyalty (GET /customers/{customer_id}/habits "
            "lists them all), every one in an export"
        )
    )

    @classmethod
    def of(cls, view: LoyaltyView, base_currency: str) -> dict:
        return LoyaltySummary.of(view, base_currency) | {
            "recency_score": view.score.recency_score,
            "frequency_score": view.score.frequency_score,
            "monetary_score": view.score.monetary_score,
            "net_spend": {c: money.format_money(a, c) for c, a in sorted(view.aggregates.net_spend.items())},
            "returns": view.aggregates.return_count,
            "sku_count": view.aggregates.sku_count,
            "purchase_habits": [PurchaseHabit.of(h) for h in sorted(view.habits, key=lambda h: h.order)],
        }
