"""Segment rules as pure functions: each condition, their conjunction, and the next moment time
alone can change a membership."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.segments import Facts, Rules, matches, next_change, shard_of

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def habit(
    sku: str = "SKU-COFFEE", *, first_days_ago: float, last_days_ago: float, times: int = 2
) -> SkuHabit:
    return SkuHabit(
        sku=sku,
        name="Kaffe",
        times_bought=times,
        quantity=times,
        first_purchase_at=NOW - first_days_ago * DAY,
        last_purchase_at=NOW - last_days_ago * DAY,
        last_purchase_id="int_1",
    )


def facts(**changes) -> Facts:
    base = {
        "customer_id": "cus_1",
        "locale": "sv-SE",
        "tags": ("vip",),
        "marketing_consent": True,
        "tier": "gold",
        "score": 70,
        "last_purchase_at": NOW - 3 * DAY,
        "habits": {},
        "open_complaints": False,
    }
    return Facts(**{**base, **changes})


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (Rules(tiers=("gold", "platinum")), True),
        (Rules(tiers=("bronze",)), False),
        (Rules(min_score=70), True),
        (Rules(min_score=71), False),
        (Rules(max_score=70), True),
        (Rules(max_score=69), False),
        (Rules(locales=("sv",)), True),
        (Rules(locales=("SV-FI",)), True),  # matched by language
        (Rules(locales=("fi", "sl")), False),
        (Rules(tags_any=("new", "vip")), True),
        (Rules(tags_any=("new",)), False),
        (Rules(marketing_consent=True), True),
        (Rules(marketing_consent=False), False),
        (Rules(open_complaints=False), True),
        (Rules(open_complaints=True), False),
        (Rules(never_purchased=False), True),
        (Rules(never_purchased=True), False),
        (Rules(tiers=("gold",), tags_any=("vip",), min_score=60), True),
        (Rules(tiers=("gold",), tags_any=("new",)), False),  # all conditions must hold
    ],
)
def test_each_condition_and_their_conjunction(rules, expected):
    assert matches(rules, facts(), NOW) is expected


def test_bought_and_not_bought_look_at_the_customers_habits():
    bought = facts(habits={"SKU-MUG": habit("SKU-MUG", first_days_ago=5, last_days_ago=5, times=1)})
    assert matches(Rules(bought_skus_any=("SKU-MUG", "SKU-TEA")), bought, NOW)
    assert not matches(Rules(bought_skus_any=("SKU-TEA",)), bought, NOW)
    assert not matches(Rules(not_bought_skus=("SKU-MUG",)), bought, NOW)
    assert matches(Rules(not_bought_skus=("SKU-TEA",)), bought, NOW)


def test_a_customer_who_never_bought_is_never_inactive_but_is_never_purchased():
    never = facts(last_purchase_at=None)
    assert not matches(Rules(inactive_days_at_least=1), never, NOW)
    assert matches(Rules(never_purchased=True), never, NOW)
    assert next_change(Rules(inactive_days_at_least=30), never, NOW) is None


def test_inactivity_starts_exactly_n_days_after_the_last_purchase_and_is_the_next_change():
    rules = Rules(inactive_days_at_least=30)
    last = NOW - 3 * DAY
    assert not matches(rules, facts(), NOW)
    assert next_change(rules, facts(), NOW) == last + 30 * DAY
    assert not matches(rules, facts(), last + 30 * DAY - timedelta(seconds=1))
    assert matches(rules, facts(), last + 30 * DAY)
    assert next_change(rules, facts(), last + 30 * DAY) is None  # only a purchase ends it


def test_repurchase_due_is_a_window_from_n_days_before_until_one_mean_interval_after():
    # Bought 20 and 10 days ago: every 10 days, next expected now.
    coffee = habit(first_days_ago=24, last_days_ago=14)  # next expected 4 days ago, mean 10
    rules = Rules(repurchase_due_within_days=3)
    due_at = NOW - 4 * DAY
    subject = facts(habits={"SKU-COFFEE": coffee})
    assert matches(rules, subject, NOW)  # 4 days overdue: within its mean interval
    assert not matches(rules, subject, due_at - 3 * DAY - timedelta(seconds=1))
    assert matches(rules, subject, due_at - 3 * DAY)
    assert matches(rules, subject, due_at + 10 * DAY)
    assert not matches(rules, subject, due_at + 10 * DAY + timedelta(seconds=1))
    assert next_change(rules, subject, NOW) == due_at + 10 * DAY + timedelta(microseconds=1)
    assert next_change(rules, subject, due_at - 5 * DAY) == due_at - 3 * DAY


def test_a_sku_bought_once_is_never_due():
    once = facts(habits={"SKU-COFFEE": habit(first_days_ago=5, last_days_ago=5, times=1)})
    rules = Rules(repurchase_due_within_days=365)
    assert not matches(rules, once, NOW)
    assert next_change(rules, once, NOW) is None


def test_rules_without_a_timed_condition_never_need_a_review():
    subject = facts(habits={"SKU-COFFEE": habit(first_days_ago=24, last_days_ago=14)})
    assert next_change(Rules(tiers=("gold",), bought_skus_any=("SKU-COFFEE",)), subject, NOW) is None


@given(st.integers(1, 365), st.floats(1, 200), st.floats(0, 400), st.floats(-400, 400))
def test_membership_never_changes_between_now_and_the_next_change(days, interval, last_ago, offset):
    subject = facts(
        habits={"SKU-COFFEE": habit(first_days_ago=last_ago + interval, last_days_ago=last_ago)},
        last_purchase_at=NOW - last_ago * DAY,
    )
    rules = Rules(repurchase_due_within_days=days)
    now = NOW + offset * DAY
    turn = next_change(rules, subject, now)
    before = matches(rules, subject, now)
    later = (turn - timedelta(microseconds=1)) if turn is not None else now + 1000 * DAY
    assert matches(rules, subject, max(now, later)) is before


def test_rules_round_trip_through_their_stored_form():
    rules = Rules(tiers=("gold",), locales=("sv", "fi"), min_score=10, open_complaints=True)
    assert Rules.from_dict(rules.to_dict()) == rules
    assert rules.to_dict() == {
        "tiers": ["gold"],
        "min_score": 10,
        "locales": ["sv", "fi"],
        "open_complaints": True,
    }


def test_shards_are_stable_and_spread():
    assert shard_of("cus_01J0000000000000000000000", 8) == shard_of("cus_01J0000000000000000000000", 8)
    assert len({shard_of(f"cus_{i}", 8) for i in range(200)}) == 8
