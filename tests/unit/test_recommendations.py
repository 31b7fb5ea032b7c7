"""The ranking rules of domain/recommendations.py, with a frozen time: repurchases due (the
window and the overdue limit), products bought together, the most bought."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.recommendations import (
    BOUGHT_TOGETHER,
    POPULAR,
    REPURCHASE_DUE,
    Related,
    popular,
    recommend,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
WINDOW = 7


def habit(sku: str, due_in_days: float | None, every_days: float = 10, times: int = 2, quantity: int = 2):
    """A habit whose next purchase is expected `due_in_days` from NOW (None: bought once)."""
    if due_in_days is None:
        last = NOW - timedelta(days=3)
        return SkuHabit(sku, sku.title(), 1, quantity, last, last, "int_1")
    last = NOW + timedelta(days=due_in_days - every_days)
    first = last - timedelta(days=every_days * (times - 1))
    return SkuHabit(sku, sku.title(), times, quantity, first, last, "int_1")


def rank(habits, related=(), returned=None, active=None, also_bought=()):
    skus = {h.sku for h in habits} | {r.sku for r in related}
    items = recommend(
        habits,
        related,
        returned or {},
        skus if active is None else active,
        NOW,
        WINDOW,
        also_bought=also_bought,
    )
    return [(r.sku, r.reason) for r in items]


def test_a_habit_due_within_the_window_is_a_repurchase_and_one_due_later_is_not():
    habits = [habit("TEA", 7), habit("COFFEE", 7.01), habit("MUG", 0)]
    assert rank(habits) == [("MUG", REPURCHASE_DUE), ("TEA", REPURCHASE_DUE)]


def test_an_overdue_habit_stays_due_until_twice_its_mean_interval_has_passed():
    # Every 10 days: overdue by 19 or exactly 20 days is still due (the longest overdue first),
    # by 21 days the customer has moved on.
    habits = [habit("TEA", -19), habit("COFFEE", -21), habit("HONEY", -20)]
    assert rank(habits) == [("HONEY", REPURCHASE_DUE), ("TEA", REPURCHASE_DUE)]


def test_repurchases_are_soonest_first_with_their_due_time_and_a_score_highest_when_due_now():
    items = recommend([habit("B", 5), habit("A", -3), habit("C", 1)], [], {}, {"A", "B", "C"}, NOW, WINDOW)
    assert [r.sku for r in items] == ["A", "C", "B"]
    assert items[0].due_at == NOW - timedelta(days=3)
    assert all(1 <= r.score <= 2 for r in items)
    assert items[1].score > items[2].score  # due in 1 day beats due in 5
    assert recommend([habit("D", 0)], [], {}, {"D"}, NOW, WINDOW)[0].score == 2


def test_a_sku_bought_once_has_no_due_time_and_is_never_a_repurchase():
    assert rank([habit("BOOK", None)]) == []


def test_bought_together_leaves_out_what_the_customer_bought_and_comes_after_repurchases():
    habits = [habit("TEA", 2), habit("MUG", None)]
    related = [Related("MUG", "TEA", 5, 10), Related("HONEY", "TEA", 3, 10), Related("SPOON", "MUG", 4, 5)]
    assert rank(habits, related) == [
        ("TEA", REPURCHASE_DUE),
        ("SPOON", BOUGHT_TOGETHER),  # 4/5 beats 3/10
        ("HONEY", BOUGHT_TOGETHER),
    ]


def test_bought_together_leaves_out_skus_bought_beyond_the_habits_read():
    related = [Related("HONEY", "TEA", 3, 10), Related("SPOON", "TEA", 2, 10)]
    assert rank([habit("TEA", None)], related, also_bought={"HONEY"}) == [("SPOON", BOUGHT_TOGETHER)]


def test_a_sku_bought_with_several_of_the_customers_keeps_its_best_confidence_and_source():
    related = [Related("HONEY", "TEA", 1, 10), Related("HONEY", "MUG", 3, 4)]
    items = recommend([habit("TEA", None), habit("MUG", None)], related, {}, {"HONEY"}, NOW, WINDOW)
    assert [(r.sku, r.because_of, r.score) for r in items] == [("HONEY", "MUG", 0.75)]


def test_inactive_skus_are_never_recommended():
    habits = [habit("TEA", 1), habit("COFFEE", 1)]
    related = [Related("HONEY", "TEA", 3, 3), Related("SPOON", "TEA", 2, 3)]
    assert rank(habits, related, active={"TEA", "SPOON"}) == [
        ("TEA", REPURCHASE_DUE),
        ("SPOON", BOUGHT_TOGETHER),
    ]


def test_a_fully_returned_sku_is_neither_due_nor_a_source_of_pairs_and_is_never_offered_again():
    habits = [habit("MUG", 1, quantity=2), habit("TEA", None)]
    related = [Related("SPOON", "MUG", 3, 3), Related("MUG", "TEA", 3, 3), Related("HONEY", "TEA", 1, 3)]
    assert rank(habits, related, returned={"MUG": 2}) == [("HONEY", BOUGHT_TOGETHER)]


def test_a_partly_returned_sku_stays_due_and_a_source_of_pairs():
    habits = [habit("MUG", 1, quantity=2)]
    assert rank(habits, [Related("SPOON", "MUG", 3, 3)], returned={"MUG": 1}) == [
        ("MUG", REPURCHASE_DUE),
        ("SPOON", BOUGHT_TOGETHER),
    ]


def test_popular_is_most_buyers_first_active_only_scored_against_the_most_bought():
    items = popular([("TEA", 8), ("OLD", 6), ("MUG", 4), ("HONEY", 2)], {"TEA", "MUG", "HONEY"})
    assert [(r.sku, r.reason, r.score) for r in items] == [
        ("TEA", POPULAR, 1.0),
        ("MUG", POPULAR, 0.5),
        ("HONEY", POPULAR, 0.25),
    ]
    assert all(r.because_of is None and r.due_at is None for r in items)
