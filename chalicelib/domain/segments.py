"""Segments: named rules over a customer's profile, loyalty, habits and cases, and the pure
functions that decide membership and when time alone can change it. The service reads the
facts; nothing here touches storage."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.loyalty.habits import SkuHabit

SEGMENT = "seg"
BUILDING = "building"
READY = "ready"

# Each segment's members are spread over this many partition keys of GSI by_segment, and its
# member count over as many counter items: DynamoDB takes about 1,000 writes a second per
# partition, so a segment takes about MEMBER_SHARDS × 1,000 membership changes a second.
MEMBER_SHARDS = 8
# The customers due for a time-driven review are spread the same way (GSI by_segment_review).
REVIEW_SHARDS = 8

RULE_NAMES = (
    "tiers",
    "min_score",
    "max_score",
    "locales",
    "tags_any",
    "marketing_consent",
    "bought_skus_any",
    "not_bought_skus",
    "repurchase_due_within_days",
    "inactive_days_at_least",
    "never_purchased",
    "open_complaints",
)
TIME_RULES = ("repurchase_due_within_days", "inactive_days_at_least")


def shard_of(customer_id: str, shards: int) -> int:
    """A stable shard of the customer (crc32: the same in every process, unlike hash())."""
    return zlib.crc32(customer_id.encode()) % shards


@dataclass(frozen=True)
class Rules:
    """All given conditions must hold; None is "not a condition"."""

    tiers: tuple[str, ...] | None = None
    min_score: int | None = None
    max_score: int | None = None
    locales: tuple[str, ...] | None = None  # languages: "sv" matches "sv-SE"
    tags_any: tuple[str, ...] | None = None
    marketing_consent: bool | None = None
    bought_skus_any: tuple[str, ...] | None = None
    not_bought_skus: tuple[str, ...] | None = None
    repurchase_due_within_days: int | None = None
    inactive_days_at_least: int | None = None
    never_purchased: bool | None = None
    open_complaints: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name in RULE_NAMES
            if (value := getattr(self, name)) is not None
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rules:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in RULE_NAMES})


@dataclass(frozen=True)
class Segment:
    id: str
    name: str
    description: str | None
    rules: Rules
    status: str
    # Which backfill of the rules is current: 1 at creation, one more at each change of rules.
    build: int
    created_at: datetime
    updated_at: datetime
    version: int = 1
    member_count: int = 0

    def with_changes(self, changes: Mapping[str, Any], at: datetime) -> Segment:
        rebuild = "rules" in changes and changes["rules"] != self.rules
        changed = replace(self, **changes, updated_at=at)
        return replace(changed, status=BUILDING, build=self.build + 1) if rebuild else changed


@dataclass(frozen=True)
class Facts:
    """What the rules look at, read for one customer at one moment."""

    customer_id: str
    locale: str
    tags: tuple[str, ...]
    marketing_consent: bool
    tier: str
    score: int
    last_purchase_at: datetime | None
    habits: Mapping[str, SkuHabit] = field(default_factory=dict)
    open_complaints: bool = False


@dataclass(frozen=True)
class Member:
    customer_id: str
    joined_at: datetime


@dataclass(frozen=True)
class Memberships:
    """A customer's memberships as one evaluation read them, with the marker's count."""

    evaluations: int | None  # None: never evaluated
    joined: dict[str, datetime]
    review_at: datetime | None


@dataclass(frozen=True)
class Change:
    """Join (at `joined_at`) or leave one segment, as decided from its build `build` (None: the
    segment is deleted). With `checked`, the write holds only if the definition is still that
    (or still gone); a customer who is gone leaves whatever the definition."""

    segment_id: str
    build: int | None
    joined_at: datetime | None = None
    checked: bool = True


@dataclass(frozen=True)
class Progress:
    """A backfill: its build, the pages counted done, their number once the walk has reached
    the last customer, and when a page was last counted."""

    build: int
    pages_done: int
    pages_total: int | None
    updated_at: datetime | None

    def complete(self, build: int) -> bool:
        return self.build == build and self.pages_total is not None and self.pages_done >= self.pages_total


def _language(tag: str) -> str:
    return tag.split("-", 1)[0].lower()


def _due_window(habit: SkuHabit, days: int) -> tuple[datetime, datetime] | None:
    """When the habit counts as due: from `days` before its next expected purchase until its
    mean interval after it (a customer that much later has likely stopped)."""
    due, mean = habit.next_expected_at, habit.mean_interval_days
    if due is None or mean is None:
        return None
    return due - timedelta(days=days), due + timedelta(days=mean)


def _holds(rules: Rules, facts: Facts, now: datetime) -> Iterable[bool]:
    if rules.tiers is not None:
        yield facts.tier in rules.tiers
    if rules.min_score is not None:
        yield facts.score >= rules.min_score
    if rules.max_score is not None:
        yield facts.score <= rules.max_score
    if rules.locales is not None:
        yield _language(facts.locale) in {_language(tag) for tag in rules.locales}
    if rules.tags_any is not None:
        yield bool(set(rules.tags_any) & set(facts.tags))
    if rules.marketing_consent is not None:
        yield facts.marketing_consent is rules.marketing_consent
    if rules.bought_skus_any is not None:
        yield any(sku in facts.habits for sku in rules.bought_skus_any)
    if rules.not_bought_skus is not None:
        yield not any(sku in facts.habits for sku in rules.not_bought_skus)
    if rules.repurchase_due_within_days is not None:
        windows = (_due_window(h, rules.repurchase_due_within_days) for h in facts.habits.values())
        yield any(w is not None and w[0] <= now <= w[1] for w in windows)
    if rules.inactive_days_at_least is not None:
        last = facts.last_purchase_at
        yield last is not None and now - last >= timedelta(days=rules.inactive_days_at_least)
    if rules.never_purchased is not None:
        yield (facts.last_purchase_at is None) is rules.never_purchased
    if rules.open_complaints is not None:
        yield facts.open_complaints is rules.open_complaints


def matches(rules: Rules, facts: Facts, now: datetime) -> bool:
    return all(_holds(rules, facts, now))


def next_change(rules: Rules, facts: Facts, now: datetime) -> datetime | None:
    """The first moment after `now` at which time alone may change whether the customer
    matches (None: only a change of the facts can). Conservative: a boundary of any timed
    condition counts, whether or not the others hold then."""
    moments: list[datetime] = []
    if rules.repurchase_due_within_days is not None:
        for habit in facts.habits.values():
            window = _due_window(habit, rules.repurchase_due_within_days)
            if window is not None:
                moments += [m for m in (window[0], window[1] + timedelta(microseconds=1)) if m > now]
    if rules.inactive_days_at_least is not None and facts.last_purchase_at is not None:
        turns = facts.last_purchase_at + timedelta(days=rules.inactive_days_at_least)
        if turns > now:
            moments.append(turns)
    return min(moments, default=None)


def needs_habits(rules: Rules) -> bool:
    return any(
        getattr(rules, name) is not None
        for name in ("bought_skus_any", "not_bought_skus", "repurchase_due_within_days")
    )


def needs_cases(rules: Rules) -> bool:
    return rules.open_complaints is not None
