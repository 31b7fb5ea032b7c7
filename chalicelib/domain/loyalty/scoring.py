"""An RFM score of a customer's aggregates at a moment, the tier it earns, and when that
tier changes by time alone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from chalicelib.domain.clock import require_aware
from chalicelib.domain.loyalty.aggregates import Aggregates
from chalicelib.domain.loyalty.config import LoyaltyConfig

_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Score:
    recency_days: int | None
    recency_score: int
    frequency_score: int
    monetary_score: int
    score: int
    tier: str


def _band_at_most(value: int, thresholds: tuple) -> int:
    for points, threshold in zip((5, 4, 3, 2), thresholds, strict=True):
        if value <= threshold:
            return points
    return 1


def _band_at_least(value: int | Decimal, thresholds: tuple) -> int:
    for points, threshold in zip((5, 4, 3, 2), reversed(thresholds), strict=True):
        if value >= threshold:
            return points
    return 1


def score(aggregates: Aggregates, now: datetime, config: LoyaltyConfig, base_currency: str) -> Score:
    """RFM score of a customer at `now`: 0 (1/1/1) to 100 (5/5/5), and its tier.

    Monetary counts net spend in `base_currency` only: without exchange rates, spend in other
    currencies is not scored. A purchase a little in the future counts as 0 days ago.
    """
    require_aware(now, "now")
    days: int | None = None
    recency = 1
    if aggregates.last_purchase_at is not None:
        days = max(0, (now - aggregates.last_purchase_at) // _DAY)
        recency = _band_at_most(days, config.recency_days)
    frequency = _band_at_least(aggregates.purchase_count, config.frequency)
    monetary = _band_at_least(aggregates.net_spend.get(base_currency, Decimal(0)), config.monetary)
    points = Decimal((recency + frequency + monetary - 3) * 100) / 12
    value = int(points.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    tier = next(name for name, threshold in config.tiers if value >= threshold)
    return Score(days, recency, frequency, monetary, value, tier)


def tier_changes_at(
    aggregates: Aggregates, now: datetime, config: LoyaltyConfig, base_currency: str
) -> datetime | None:
    """The earliest moment after `now` at which the tier differs from the tier at `now`,
    assuming no new interactions; None if it never changes.

    Only recency moves with time, and it steps down when the floored day count exceeds a
    threshold, i.e. at last purchase + (threshold + 1) days.
    """
    last = aggregates.last_purchase_at
    if last is None:
        return None
    tier = score(aggregates, now, config, base_currency).tier
    for threshold in config.recency_days:
        moment = last + (threshold + 1) * _DAY
        if moment > now and score(aggregates, moment, config, base_currency).tier != tier:
            return moment
    return None
