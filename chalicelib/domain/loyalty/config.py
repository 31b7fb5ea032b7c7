"""The RFM bands and tier thresholds loyalty is scored with, and reading them from the
environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from itertools import pairwise

from chalicelib.domain import money

TIERS = ("bronze", "silver", "gold", "platinum")


def _ascending(values: tuple, what: str) -> None:
    if len(values) != 4:
        raise ValueError(f"{what} needs exactly 4 thresholds, got {len(values)}")
    if any(v < 0 for v in values):
        raise ValueError(f"{what} thresholds must not be negative")
    if any(a >= b for a, b in pairwise(values)):
        raise ValueError(f"{what} thresholds must be strictly ascending")


@dataclass(frozen=True)
class LoyaltyConfig:
    """RFM bands and tier thresholds.

    recency_days: days since the last purchase at most these → scores 5, 4, 3, 2 (else 1).
    frequency: purchase counts at least these → scores 2, 3, 4, 5 (else 1).
    monetary: net spend in the base currency at least these → scores 2, 3, 4, 5 (else 1).
    tiers: (name, minimum score), kept highest threshold first.
    """

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency: tuple[int, int, int, int] = (2, 4, 8, 16)
    monetary: tuple[Decimal, Decimal, Decimal, Decimal] = (
        Decimal(100),
        Decimal(500),
        Decimal(1000),
        Decimal(5000),
    )
    tiers: tuple[tuple[str, int], ...] = (("platinum", 80), ("gold", 60), ("silver", 40), ("bronze", 0))

    def __post_init__(self) -> None:
        _ascending(tuple(self.recency_days), "recency_days")
        _ascending(tuple(self.frequency), "frequency")
        _ascending(tuple(self.monetary), "monetary")
        names = [name for name, _ in self.tiers]
        unknown = [name for name in names if name not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier {unknown[0]!r}: tiers are {', '.join(TIERS)}")
        if len(set(names)) != len(names):
            raise ValueError("a tier is listed twice")
        thresholds = dict(self.tiers)
        if thresholds.get("bronze") != 0:
            raise ValueError("tier bronze must be present with threshold 0")
        ranked = [thresholds[name] for name in TIERS if name in thresholds]
        if any(not 0 <= t <= 100 for t in ranked):
            raise ValueError("tier thresholds must be between 0 and 100")
        if any(a >= b for a, b in pairwise(ranked)):
            raise ValueError("tier thresholds must strictly increase from bronze to platinum")
        ordered = tuple(sorted(self.tiers, key=lambda tier: tier[1], reverse=True))
        object.__setattr__(self, "tiers", ordered)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoyaltyConfig:
        """The defaults, overridden by CRM_LOYALTY_RECENCY_DAYS, _FREQUENCY, _MONETARY ("a,b,c,d")
        and CRM_LOYALTY_TIERS ("platinum:80,gold:60,silver:40,bronze:0")."""
        overrides: dict[str, object] = {}
        for name, attribute, parse in (
            ("CRM_LOYALTY_RECENCY_DAYS", "recency_days", _parse_int),
            ("CRM_LOYALTY_FREQUENCY", "frequency", _parse_int),
            ("CRM_LOYALTY_MONETARY", "monetary", _parse_decimal),
        ):
            text = env.get(name, "").strip()
            if text:
                try:
                    overrides[attribute] = tuple(parse(part) for part in text.split(","))
                    _ascending(overrides[attribute], attribute)
                except ValueError as error:
                    raise ValueError(f"{name}={text!r}: {error}") from None
        text = env.get("CRM_LOYALTY_TIERS", "").strip()
        if text:
            try:
                overrides["tiers"] = tuple(_parse_tier(part) for part in text.split(","))
                cls(tiers=overrides["tiers"])
            except ValueError as error:
                raise ValueError(f"CRM_LOYALTY_TIERS={text!r}: {error}") from None
        return cls(**overrides)


def _parse_int(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _parse_decimal(text: str) -> Decimal:
    try:
        return money.to_decimal(text.strip())
    except money.MoneyError:
        raise ValueError(f"{text.strip()!r} is not a decimal number") from None


def _parse_tier(text: str) -> tuple[str, int]:
    name, colon, threshold = text.partition(":")
    if not colon:
        raise ValueError(f"{text.strip()!r} is not name:threshold")
    return name.strip(), _parse_int(threshold)
