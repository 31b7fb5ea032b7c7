from __future__ import annotations

import json
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.loyalty.aggregates import Aggregates, apply, from_scratch
from chalicelib.domain.loyalty.config import TIERS, LoyaltyConfig
from chalicelib.domain.loyalty.contributions import Contribution, Line, PoisonRecord, contribution_of
from chalicelib.domain.loyalty.scoring import score, tier_changes_at
from chalicelib.events.loyalty import read_image

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)
CONFIG = LoyaltyConfig()


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def purchase(
    interaction_id: str,
    at: datetime,
    amount: str = "10.00",
    currency: str = "EUR",
    lines: tuple[tuple[str, str, int], ...] = (("A", "Apple", 1),),
) -> Contribution:
    return Contribution(
        interaction_id, "purchase", at, currency, Decimal(amount), tuple(Line(*line) for line in lines)
    )


def refund(interaction_id: str, at: datetime, amount: str, currency: str = "EUR") -> Contribution:
    return Contribution(interaction_id, "return", at, currency, Decimal(amount), ())


def build(*contributions: Contribution) -> Aggregates:
    aggregates = Aggregates()
    for contribution in contributions:
        aggregates = apply(aggregates, [contribution], [])
    return aggregates


class Calls:
    """A `remaining_purchases` callback that counts its calls."""

    def __init__(self, purchases: list[Contribution]) -> None:
        self.purchases = purchases
        self.count = 0

    def __call__(self) -> list[Contribution]:
        self.count += 1
        return self.purchases


def roundtrip(aggregates: Aggregates) -> Aggregates:
    return Aggregates.from_dict(json.loads(json.dumps(aggregates.to_dict())))


# --- contribution_of ------------------------------------------------------------------


def contribution_of_image(image: dict | None) -> Contribution | None:
    """What the loyalty consumer makes of a stream image: AttributeValues read, then the rules."""
    return contribution_of(read_image(image))


def purchase_image(**changes: dict | None) -> dict:
    """A stream image as the InteractionModel writes it; a change of None drops the attribute."""
    image: dict = {
        "customer_id": {"S": "cus_1"},
        "id": {"S": "int_1"},
        "customer_type": {"S": "cus_1#purchase"},
        "type": {"S": "purchase"},
        "channel": {"S": "store"},
        "occurred_at": {"S": "2026-05-01T10:00:00.000Z"},
        "created_at": {"S": "2026-05-01T10:00:01.000Z"},
        "currency": {"S": "EUR"},
        "amount": {"S": "4.40"},
        "items": {
            "L": [
                {
                    "M": {
                        "sku": {"S": "A"},
                        "name": {"S": "Apple"},
                        "quantity": {"N": "2"},
                        "unit_price": {"S": "1.10"},
                    }
                },
                {
                    "M": {
                        "sku": {"S": "B"},
                        "name": {"S": "Bread"},
                        "quantity": {"N": "1"},
                        "unit_price": {"S": "2.20"},
                    }
                },
            ]
        },
        "returned": {"M": {}},
        "version": {"N": "1"},
    }
    for name, value in changes.items():
        if value is None:
            image.pop(name, None)
        else:
            image[name] = value
    return image


def item(sku: dict | None = None, quantity: dict | None = None) -> dict:
    attributes = {"name": {"S": "Apple"}, "unit_price": {"S": "1.10"}}
    if sku is not None:
        attributes["sku"] = sku
    if quantity is not None:
        attributes["quantity"] = quantity
    return {"M": attributes}


def test_a_purchase_image_contributes_its_amount_and_lines():
    contribution = contribution_of_image(purchase_image())
    assert contribution == Contribution(
        interaction_id="int_1",
        kind="purchase",
        occurred_at=datetime(2026, 5, 1, 10, tzinfo=UTC),
        currency="EUR",
        amount=Decimal("4.40"),
        lines=(Line("A", "Apple", 2), Line("B", "Bread", 1)),
    )
    assert str(contribution.amount) == "4.40"
    assert contribution.occurred_at.tzinfo is UTC


def test_a_return_image_contributes_its_refund_but_no_lines():
    image = purchase_image(
        id={"S": "int_2"},
        type={"S": "return"},
        customer_type={"S": "cus_1#return"},
        purchase_id={"S": "int_1"},
        amount={"S": "2.20"},
        returned=None,
    )
    contribution = contribution_of_image(image)
    assert contribution == Contribution(
        "int_2", "return", datetime(2026, 5, 1, 10, tzinfo=UTC), "EUR", Decimal("2.20")
    )
    assert contribution.lines == ()


def test_an_amount_stored_as_a_number_is_read_too():
    assert contribution_of_image(purchase_image(amount={"N": "4.4"})).amount == Decimal("4.40")


@pytest.mark.parametrize("kind", ["complaint", "inquiry", "feedback", "visit"])
def test_interactions_without_money_contribute_nothing(kind):
    image = {
        "customer_id": {"S": "cus_1"},
        "id": {"S": "int_3"},
        "type": {"S": kind},
        "channel": {"S": "phone"},
        "occurred_at": {"S": "2026-05-01T10:00:00.000Z"},
        "severity": {"S": "high"},
        "subject": {"S": "Late delivery"},
    }
    assert contribution_of_image(image) is None


def test_no_image_contributes_nothing():
    assert contribution_of_image(None) is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"type": None}, "type is missing"),
        ({"id": None}, "id is missing"),
        ({"amount": None}, "amount is missing"),
        ({"amount": {"NULL": True}}, "amount is missing"),
        ({"amount": {"S": "-1.00"}}, "amount must not be negative"),
        ({"amount": {"S": "1.005"}}, "amount has more decimal places"),
        ({"amount": {"S": "four"}}, "amount must be a decimal number"),
        ({"amount": {"BOOL": True}}, "amount is not of type S"),
        ({"currency": None}, "currency is missing"),
        ({"currency": {"S": "EURO"}}, "ISO 4217"),
        ({"occurred_at": None}, "occurred_at is missing"),
        ({"occurred_at": {"S": "yesterday"}}, "occurred_at is not an RFC 3339"),
        ({"occurred_at": {"S": "2026-05-01T10:00:00"}}, "no UTC offset"),
        ({"items": None}, "items is missing"),
        ({"items": {"L": []}}, "items is empty"),
        ({"items": {"S": "A"}}, "items is not of type L"),
        ({"items": {"L": [{"S": "A"}]}}, "items.0 is not a map"),
        ({"items": {"L": [item(quantity={"N": "1"})]}}, "items.0.sku is missing"),
        ({"items": {"L": [item(sku={"S": "A"})]}}, "items.0.quantity is missing"),
        ({"items": {"L": [item({"S": "A"}, {"N": "0"})]}}, "not a positive whole number"),
        ({"items": {"L": [item({"S": "A"}, {"N": "1.5"})]}}, "not a positive whole number"),
        ({"items": {"L": [item({"S": "A"}, {"N": "x"})]}}, "items.0.quantity is not of type Number"),
        ({"items": {"L": [item({"S": "Å" * 257}, {"N": "1"})]}}, "sku is longer than 512 bytes"),
    ],
)
def test_a_malformed_purchase_is_a_poison_record(changes, reason):
    with pytest.raises(PoisonRecord, match=reason):
        contribution_of_image(purchase_image(**changes))


def test_a_malformed_return_is_a_poison_record_too():
    with pytest.raises(PoisonRecord, match="amount is missing"):
        contribution_of_image(purchase_image(type={"S": "return"}, amount=None))


def test_a_value_that_is_not_an_attribute_value_is_a_poison_record_where_it_is_read_and_only_there():
    with pytest.raises(PoisonRecord, match=r"items\.1\.name is not of type String"):
        contribution_of_image(
            purchase_image(
                items={"L": [item({"S": "A"}, {"N": "1"}), {"M": {"sku": {"S": "B"}, "name": {"X": "?"}}}]}
            )
        )
    with pytest.raises(PoisonRecord, match="amount is not of type String or Number"):
        contribution_of_image(purchase_image(amount="4.40"))
    # DynamoDB Local's stream delivers an empty map as {}: `returned` is not read.
    assert contribution_of_image(purchase_image(returned={})) == contribution_of_image(purchase_image())
    with pytest.raises(PoisonRecord, match="not a map"):
        read_image([{"S": "A"}])


def test_the_rules_read_an_interaction_as_plain_values():
    interaction = {
        "id": "int_1",
        "type": "purchase",
        "occurred_at": "2026-05-01T12:00:00+02:00",
        "currency": "EUR",
        "amount": Decimal("4.4"),
        "items": [{"sku": "A", "name": "Apple", "quantity": Decimal(2)}],
        "returned": {},
    }
    assert contribution_of(interaction) == Contribution(
        "int_1",
        "purchase",
        datetime(2026, 5, 1, 10, tzinfo=UTC),
        "EUR",
        Decimal("4.40"),
        (Line("A", "Apple", 2),),
    )
    with pytest.raises(PoisonRecord, match=r"items\.0\.quantity is not of type Number"):
        contribution_of(interaction | {"items": [{"sku": "A", "name": "Apple", "quantity": "2"}]})
    with pytest.raises(PoisonRecord, match="amount is not of type String or Number"):
        contribution_of(interaction | {"amount": 4.4})


def test_a_poison_record_is_a_value_error():
    assert issubclass(PoisonRecord, ValueError)


def test_a_contribution_survives_json_exactly():
    contribution = purchase("int_1", T0 + timedelta(microseconds=123456), "1.10", lines=(("A", "a", 3),))
    restored = Contribution.from_dict(json.loads(json.dumps(contribution.to_dict())))
    assert restored == contribution
    assert str(restored.amount) == "1.10"


def test_a_contribution_refuses_negative_amounts_naive_times_and_lines_on_returns():
    with pytest.raises(ValueError, match="non-negative"):
        refund("r", T0, "-1.00")
    with pytest.raises(ValueError, match="timezone-aware"):
        purchase("p", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="no lines"):
        Contribution("r", "return", T0, "EUR", Decimal(1), (Line("A", "a", 1),))


# --- apply ----------------------------------------------------------------------------


def test_a_return_reduces_net_spend_but_keeps_the_habit():
    bought = purchase("p1", day(0), "10.00", lines=(("A", "Apple", 2),))
    after_purchase = build(bought)
    after_return = apply(after_purchase, [refund("r1", day(1), "4.00")], [])
    assert after_return.net_spend == {"EUR": Decimal("6.00")}
    assert (after_return.purchase_count, after_return.return_count) == (1, 1)
    assert after_return.skus == after_purchase.skus
    assert after_return.skus["A"].quantity == 2
    assert after_return.last_purchase_at == day(0)


def test_a_full_refund_drops_the_currency_from_net_spend():
    aggregates = build(purchase("p1", day(0), "10.00"), refund("r1", day(1), "10.00"))
    assert aggregates.net_spend == {}


def test_spend_is_kept_per_currency():
    aggregates = build(
        purchase("p1", day(0), "10.00", "EUR"),
        purchase("p2", day(1), "100.50", "SEK"),
        purchase("p3", day(2), "0.10", "EUR"),
        refund("r1", day(3), "0.50", "SEK"),
    )
    assert aggregates.net_spend == {"EUR": Decimal("10.10"), "SEK": Decimal("100.00")}


def test_a_sku_bought_on_days_0_10_and_30_is_expected_again_on_day_45():
    aggregates = build(
        purchase("p1", day(0), lines=(("A", "Apple", 1),)),
        purchase("p2", day(10), lines=(("A", "Apple", 2), ("B", "Bread", 1))),
        purchase("p3", day(30), lines=(("A", "Apple", 3),)),
    )
    apple = aggregates.skus["A"]
    assert (apple.times_bought, apple.quantity) == (3, 6)
    assert (apple.first_purchase_at, apple.last_purchase_at) == (day(0), day(30))
    assert apple.mean_interval_days == 15.0
    assert apple.next_expected_at == day(45)
    bread = aggregates.skus["B"]
    assert bread.times_bought == 1
    assert bread.mean_interval_days is None
    assert bread.next_expected_at is None


def test_two_lines_of_one_sku_in_a_purchase_count_as_one_time_bought():
    aggregates = build(purchase("p1", day(0), lines=(("A", "Apple", 1), ("A", "Apple", 2))))
    assert (aggregates.skus["A"].times_bought, aggregates.skus["A"].quantity) == (1, 3)


def test_a_sku_is_named_after_its_most_recent_purchase_and_then_the_highest_id():
    aggregates = build(
        purchase("p2", day(5), lines=(("A", "Red apple", 1),)),
        purchase("p1", day(1), lines=(("A", "Old apple", 1),)),
    )
    assert aggregates.skus["A"].name == "Red apple"
    tied = apply(aggregates, [purchase("p3", day(5), lines=(("A", "Green apple", 1),))], [])
    assert tied.skus["A"].name == "Green apple"
    tied_lower = apply(aggregates, [purchase("p0", day(5), lines=(("A", "Pear", 1),))], [])
    assert tied_lower.skus["A"].name == "Red apple"


def test_removing_the_latest_purchase_recomputes_the_last_purchase_from_what_remains():
    p1 = purchase("p1", day(0), lines=(("A", "Apple", 1),))
    p2 = purchase("p2", day(10), lines=(("A", "Apple", 1),))
    p3 = purchase("p3", day(30), lines=(("A", "Green apple", 1),))
    aggregates = build(p1, p2, p3)
    remaining = Calls([p1, p2])
    after = apply(aggregates, [], [p3], remaining)
    assert remaining.count == 1
    assert after.last_purchase_at == day(10)
    assert after.skus["A"].last_purchase_at == day(10)
    assert after.skus["A"].name == "Apple"
    assert after == from_scratch([p1, p2])


def test_removing_a_purchase_inside_the_boundaries_does_not_ask_for_the_remaining_ones():
    p1, p2, p3 = (purchase(f"p{i}", day(i * 10)) for i in (1, 2, 3))
    aggregates = build(p1, p2, p3, refund("r1", day(40), "1.00"))
    remaining = Calls([p1, p3])
    after = apply(aggregates, [], [p2], remaining)
    after = apply(after, [], [refund("r1", day(40), "1.00")], remaining)
    assert remaining.count == 0
    assert after == from_scratch([p1, p3])


def test_moving_the_latest_purchase_later_does_not_ask_for_the_remaining_ones():
    p1, p2 = purchase("p1", day(0)), purchase("p2", day(10))
    moved = purchase("p2", day(12), "12.00")
    remaining = Calls([p1, moved])
    after = apply(build(p1, p2), [moved], [p2], remaining)
    assert remaining.count == 0
    assert after == from_scratch([p1, moved])


def test_moving_the_latest_purchase_earlier_asks_for_the_remaining_ones_once():
    p1, p2 = purchase("p1", day(0), lines=(("A", "a", 1),)), purchase("p2", day(10), lines=(("A", "a", 1),))
    p3 = purchase("p3", day(20), lines=(("A", "a", 1), ("B", "b", 1)))
    moved = purchase("p3", day(5), lines=(("A", "a", 1), ("B", "b", 1)))
    remaining = Calls([p1, p2, moved])
    after = apply(build(p1, p2, p3), [moved], [p3], remaining)
    assert remaining.count == 1
    assert after == from_scratch([p1, p2, moved])


def test_a_needed_but_missing_remaining_purchases_callback_is_an_error():
    p1, p2 = purchase("p1", day(0)), purchase("p2", day(10))
    with pytest.raises(ValueError, match="remaining_purchases"):
        apply(build(p1, p2), [], [p2])


def test_removing_every_purchase_and_return_gives_empty_aggregates():
    contributions = [
        purchase("p1", day(0), lines=(("A", "a", 1),)),
        purchase("p2", day(3), "5.00", "SEK", lines=(("B", "b", 2),)),
        refund("r1", day(4), "1.00"),
    ]
    aggregates = build(*contributions)
    still_applied = list(contributions)
    remaining = Calls([])
    for contribution in contributions:
        still_applied.remove(contribution)
        remaining.purchases = [c for c in still_applied if c.kind == "purchase"]
        aggregates = apply(aggregates, [], [contribution], remaining)
    assert aggregates == Aggregates()
    assert remaining.count == 1  # only when p1 left while p2 remained


def test_aggregates_survive_json_exactly():
    aggregates = build(
        purchase("p1", day(0) + timedelta(microseconds=7), "10.10", lines=(("A", "a", 1),)),
        purchase("p2", day(3), "5.00", "SEK", lines=(("B", "b", 2), ("A", "a", 1))),
        refund("r1", day(4), "1.05"),
    )
    restored = roundtrip(aggregates)
    assert restored == aggregates
    assert restored.to_dict() == aggregates.to_dict()
    assert roundtrip(Aggregates()) == Aggregates()


# --- apply: properties ----------------------------------------------------------------

CUSTOMERS = ("cus_1", "cus_2")


@st.composite
def contributions(draw: st.DrawFn) -> tuple[str, Contribution]:
    """A few customers' interactions; a small id space makes new versions of one interaction,
    and coarse times make ties."""
    customer = draw(st.sampled_from(CUSTOMERS))
    interaction_id = f"{customer}/int_{draw(st.integers(0, 5))}"
    at = day(draw(st.integers(0, 8))) + timedelta(hours=draw(st.sampled_from([0, 6])))
    currency = draw(st.sampled_from(["EUR", "SEK"]))
    amount = Decimal(draw(st.integers(0, 100_000))).scaleb(-2)
    if draw(st.booleans()):
        lines = draw(
            st.lists(
                st.builds(Line, st.sampled_from("ABCD"), st.sampled_from(["x", "y"]), st.integers(1, 5)),
                min_size=1,
                max_size=3,
            )
        )
        return customer, Contribution(interaction_id, "purchase", at, currency, amount, tuple(lines))
    return customer, Contribution(interaction_id, "return", at, currency, amount, ())


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[str, str, Contribution]]:
    """Every contribution written once in any order, with re-deliveries and removals mixed in."""
    pool = draw(st.lists(contributions(), min_size=1, max_size=12))
    history = [("put", customer, c) for customer, c in draw(st.permutations(pool))]
    extras = draw(
        st.lists(
            st.tuples(
                st.integers(0, len(history)),
                st.sampled_from(["put", "remove"]),
                st.sampled_from(pool),
            ),
            max_size=12,
        )
    )
    for position, op, (customer, c) in extras:
        history.insert(position, (op, customer, c))
    return history


@settings(max_examples=200, deadline=None)
@given(histories())
def test_applying_deltas_in_any_order_with_duplicates_and_removals_equals_computing_from_scratch(history):
    guards: dict[str, dict[str, Contribution]] = defaultdict(dict)
    aggregates: dict[str, Aggregates] = defaultdict(Aggregates)
    for op, customer, contribution in history:
        guard = guards[customer]
        remaining = Calls([])
        applied = guard.get(contribution.interaction_id)
        if op == "put":
            guard[contribution.interaction_id] = contribution
            added, removed = [contribution], [applied] if applied else []
        elif applied is not None:
            del guard[contribution.interaction_id]
            added, removed = [], [applied]
        else:
            continue
        remaining.purchases = [c for c in guard.values() if c.kind == "purchase"]
        before = aggregates[customer]
        aggregates[customer] = apply(before, added, removed, remaining)
        assert remaining.count <= 1
        if applied == contribution and op == "put":
            assert aggregates[customer] == before
            assert remaining.count == 0
        assert aggregates[customer] == from_scratch(guard.values())
        assert roundtrip(aggregates[customer]) == aggregates[customer]


@settings(max_examples=100, deadline=None)
@given(st.lists(contributions(), max_size=8), contributions())
def test_adding_and_removing_the_same_contribution_changes_nothing(pool, extra):
    aggregates = from_scratch(c for _, c in pool)
    assert apply(aggregates, [extra[1]], [extra[1]]) == aggregates


def test_from_scratch_keeps_the_last_version_of_each_interaction():
    first, second = purchase("p1", day(0), "1.00"), purchase("p1", day(2), "3.00")
    assert from_scratch([first, second]) == build(second)


# --- score ----------------------------------------------------------------------------

RECENCY_DAYS = {5: 0, 4: 60, 3: 120, 2: 300, 1: 400}
PURCHASES = {1: 1, 2: 2, 3: 4, 4: 8, 5: 16}
SPEND = {1: "0", 2: "100", 3: "500", 4: "1000", 5: "5000"}


def customer(purchases: int = 1, spend: str | dict = "0", last: datetime = T0) -> Aggregates:
    net = spend if isinstance(spend, dict) else {"EUR": Decimal(spend)}
    return Aggregates(
        purchase_count=purchases,
        net_spend={currency: amount for currency, amount in net.items() if amount},
        first_purchase_at=last - timedelta(days=500) if purchases > 1 else last,
        last_purchase_at=last,
    )


def rfm(r: int, f: int, m: int) -> Aggregates:
    return customer(PURCHASES[f], SPEND[m], T0 - timedelta(days=RECENCY_DAYS[r]))


@pytest.mark.parametrize(
    ("days", "expected"),
    [(0, 5), (30, 5), (31, 4), (90, 4), (91, 3), (180, 3), (181, 2), (365, 2), (366, 1), (4000, 1)],
)
def test_recency_bands(days, expected):
    result = score(customer(), T0 + timedelta(days=days), CONFIG, "EUR")
    assert (result.recency_days, result.recency_score) == (days, expected)


def test_recency_counts_whole_days_only():
    result = score(customer(), T0 + timedelta(days=31) - SECOND, CONFIG, "EUR")
    assert (result.recency_days, result.recency_score) == (30, 5)


def test_a_purchase_slightly_in_the_future_is_zero_days_ago():
    result = score(customer(last=T0 + timedelta(minutes=3)), T0, CONFIG, "EUR")
    assert (result.recency_days, result.recency_score) == (0, 5)


def test_without_purchases_recency_is_unknown_and_scores_1():
    result = score(Aggregates(), T0, CONFIG, "EUR")
    assert (result.recency_days, result.recency_score, result.frequency_score) == (None, 1, 1)
    assert (result.score, result.tier) == (0, "bronze")


@pytest.mark.parametrize(
    ("purchases", "expected"),
    [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (7, 3), (8, 4), (15, 4), (16, 5), (1000, 5)],
)
def test_frequency_bands(purchases, expected):
    assert score(customer(purchases), T0, CONFIG, "EUR").frequency_score == expected


@pytest.mark.parametrize(
    ("spend", "expected"),
    [
        ("-50.00", 1),
        ("0", 1),
        ("99.99", 1),
        ("100.00", 2),
        ("499.99", 2),
        ("500", 3),
        ("999.99", 3),
        ("1000.00", 4),
        ("4999.99", 4),
        ("5000.00", 5),
        ("1000000", 5),
    ],
)
def test_monetary_bands(spend, expected):
    assert score(customer(spend=spend), T0, CONFIG, "EUR").monetary_score == expected


def test_spend_in_other_currencies_is_not_scored():
    rich_in_sek = customer(spend={"SEK": Decimal("1000000.00")})
    assert score(rich_in_sek, T0, CONFIG, "EUR").monetary_score == 1
    assert score(rich_in_sek, T0, CONFIG, "SEK").monetary_score == 5


@pytest.mark.parametrize(
    ("r", "f", "m", "expected", "tier"),
    [
        (5, 5, 5, 100, "platinum"),
        (1, 1, 1, 0, "bronze"),
        (5, 3, 1, 50, "silver"),
        (2, 1, 1, 8, "bronze"),
        (3, 1, 1, 17, "bronze"),
        (4, 2, 2, 42, "silver"),
        (4, 4, 2, 58, "silver"),
        (3, 4, 4, 67, "gold"),
        (4, 4, 4, 75, "gold"),
        (5, 4, 4, 83, "platinum"),
        (5, 5, 4, 92, "platinum"),
    ],
)
def test_score_is_rfm_scaled_to_0_100_and_rounded_half_up(r, f, m, expected, tier):
    result = score(rfm(r, f, m), T0, CONFIG, "EUR")
    assert (result.recency_score, result.frequency_score, result.monetary_score) == (r, f, m)
    assert (result.score, result.tier) == (expected, tier)


def test_scores_decay_as_time_passes_without_purchases():
    aggregates = rfm(5, 3, 3)
    results = [score(aggregates, T0 + timedelta(days=d), CONFIG, "EUR") for d in range(0, 400, 7)]
    recency = [r.recency_score for r in results]
    assert recency == sorted(recency, reverse=True)
    assert recency[0] == 5
    assert recency[-1] == 1
    assert results[-1].score < results[0].score


# --- tier_changes_at ------------------------------------------------------------------


def test_the_tier_changes_at_the_first_crossing_that_changes_the_tier_not_merely_the_score():
    aggregates = rfm(5, 5, 5)  # platinum until recency drops to 2: 100 → 92 → 83 → 75
    moment = tier_changes_at(aggregates, T0, CONFIG, "EUR")
    assert moment == T0 + timedelta(days=181)
    assert score(aggregates, T0 + timedelta(days=31), CONFIG, "EUR").recency_score == 4
    assert score(aggregates, moment - SECOND, CONFIG, "EUR").tier == "platinum"
    assert score(aggregates, moment, CONFIG, "EUR").tier == "gold"


def test_the_tier_change_after_one_has_happened_is_the_next_one():
    aggregates = rfm(5, 5, 3)  # 83 platinum → 75 gold → 67 gold → 58 silver → 50 silver
    assert tier_changes_at(aggregates, T0, CONFIG, "EUR") == T0 + timedelta(days=31)
    moment = tier_changes_at(aggregates, T0 + timedelta(days=31), CONFIG, "EUR")
    assert moment == T0 + timedelta(days=181)
    assert score(aggregates, moment, CONFIG, "EUR").tier == "silver"
    assert tier_changes_at(aggregates, moment, CONFIG, "EUR") is None


@pytest.mark.parametrize(
    "aggregates",
    [
        Aggregates(),  # no purchases
        rfm(1, 5, 5),  # recency already at its lowest
        rfm(5, 1, 1),  # bronze whatever the recency
    ],
)
def test_the_tier_never_changes_without_new_purchases(aggregates):
    assert tier_changes_at(aggregates, T0, CONFIG, "EUR") is None


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(list(RECENCY_DAYS)),
    st.sampled_from(list(PURCHASES)),
    st.sampled_from(list(SPEND)),
    st.integers(0, 400 * 86400),
)
def test_the_tier_holds_until_the_moment_it_changes(r, f, m, seconds_later):
    aggregates = rfm(r, f, m)
    now = T0 + timedelta(seconds=seconds_later)
    tier = score(aggregates, now, CONFIG, "EUR").tier
    moment = tier_changes_at(aggregates, now, CONFIG, "EUR")
    if moment is None:
        assert score(aggregates, now + timedelta(days=5000), CONFIG, "EUR").tier == tier
    else:
        assert moment > now
        assert score(aggregates, moment, CONFIG, "EUR").tier != tier
        assert score(aggregates, max(now, moment - SECOND), CONFIG, "EUR").tier == tier


# --- configuration --------------------------------------------------------------------


def test_without_overrides_the_configuration_is_the_default():
    config = LoyaltyConfig.from_env({"OTHER": "1"})
    assert config == LoyaltyConfig()
    assert config.recency_days == (30, 90, 180, 365)
    assert config.frequency == (2, 4, 8, 16)
    assert config.monetary == (Decimal(100), Decimal(500), Decimal(1000), Decimal(5000))
    assert config.tiers == (("platinum", 80), ("gold", 60), ("silver", 40), ("bronze", 0))
    assert {name for name, _ in config.tiers} == set(TIERS)


def test_every_setting_can_be_overridden_from_the_environment():
    config = LoyaltyConfig.from_env(
        {
            "CRM_LOYALTY_RECENCY_DAYS": "7, 14,28,56",
            "CRM_LOYALTY_FREQUENCY": "3,6,9,12",
            "CRM_LOYALTY_MONETARY": "50,250.50,1000,2000",
            "CRM_LOYALTY_TIERS": "bronze:0,silver:30,gold:50,platinum:70",
        }
    )
    assert config.recency_days == (7, 14, 28, 56)
    assert config.frequency == (3, 6, 9, 12)
    assert config.monetary == (Decimal(50), Decimal("250.50"), Decimal(1000), Decimal(2000))
    assert config.tiers == (("platinum", 70), ("gold", 50), ("silver", 30), ("bronze", 0))
    assert score(customer(purchases=3, spend="250.50"), T0, config, "EUR").score == 58  # r5 f2 m3
    assert score(customer(purchases=3, spend="250.50"), T0, config, "EUR").tier == "gold"


def test_fewer_tiers_may_be_configured():
    config = LoyaltyConfig.from_env({"CRM_LOYALTY_TIERS": "gold:50,bronze:0"})
    assert config.tiers == (("gold", 50), ("bronze", 0))
    assert score(rfm(5, 3, 1), T0, config, "EUR").tier == "gold"
    assert score(rfm(5, 2, 1), T0, config, "EUR").tier == "bronze"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRM_LOYALTY_RECENCY_DAYS", "30,20,180,365", "strictly ascending"),
        ("CRM_LOYALTY_RECENCY_DAYS", "30,90,90,365", "strictly ascending"),
        ("CRM_LOYALTY_RECENCY_DAYS", "30,90,180", "exactly 4"),
        ("CRM_LOYALTY_RECENCY_DAYS", "30,90,180,365,400", "exactly 4"),
        ("CRM_LOYALTY_RECENCY_DAYS", "30,90,180.5,365", "not a whole number"),
        ("CRM_LOYALTY_FREQUENCY", "-1,4,8,16", "not a whole number"),
        ("CRM_LOYALTY_FREQUENCY", "2,4,,16", "not a whole number"),
        ("CRM_LOYALTY_MONETARY", "100,500,1e3,5000", "not a decimal number"),
        ("CRM_LOYALTY_MONETARY", "-100,500,1000,5000", "must not be negative"),
        ("CRM_LOYALTY_MONETARY", "100,50,1000,5000", "strictly ascending"),
        ("CRM_LOYALTY_TIERS", "platinum:80,gold:60,silver:40", "bronze must be present with threshold 0"),
        ("CRM_LOYALTY_TIERS", "platinum:80,bronze:10", "bronze must be present with threshold 0"),
        ("CRM_LOYALTY_TIERS", "diamond:90,bronze:0", "unknown tier 'diamond'"),
        ("CRM_LOYALTY_TIERS", "gold:80,platinum:60,bronze:0", "strictly increase from bronze to platinum"),
        ("CRM_LOYALTY_TIERS", "gold:60,gold:70,bronze:0", "listed twice"),
        ("CRM_LOYALTY_TIERS", "platinum:180,bronze:0", "between 0 and 100"),
        ("CRM_LOYALTY_TIERS", "platinum,bronze:0", "not name:threshold"),
    ],
)
def test_invalid_overrides_are_refused_naming_the_variable(name, value, message):
    with pytest.raises(ValueError, match=message) as error:
        LoyaltyConfig.from_env({name: value})
    assert str(error.value).startswith(f"{name}=")


def test_the_anonymous_copy_drops_names_and_purchase_ids_but_keeps_every_sku_whatever_it_spells():
    from chalicelib.services.erasure import _skus_and_numbers

    aggregates = {
        "purchase_count": 2,
        "skus": {
            "name": {"sku": "name", "name": "Kaffe till Åsa", "times_bought": 1, "last_purchase_id": "int_1"},
            "SKU-A": {"sku": "SKU-A", "name": "Termos", "times_bought": 2, "last_purchase_id": "int_2"},
        },
        "lines": [{"sku": "SKU-A", "name": "Termos", "quantity": 1}],
    }

    kept = _skus_and_numbers(aggregates)

    assert set(kept["skus"]) == {"name", "SKU-A"}
    assert kept["skus"]["name"] == {"sku": "name", "times_bought": 1}
    assert kept["lines"] == [{"sku": "SKU-A", "quantity": 1}]
    assert kept["purchase_count"] == 2


# --- parts: a purchase of many SKUs, applied a part at a time -----------------------------


def test_a_purchase_of_more_skus_than_a_part_holds_is_split_by_sku_with_the_amount_in_part_0():
    from chalicelib.domain.loyalty.contributions import SKUS_PER_PART, parts_of

    lines = [(f"S{n:03d}", f"name {n}", 1) for n in reversed(range(100))] + [("S000", "again", 2)]
    whole = purchase("p1", day(0), "100.00", lines=tuple(lines))
    parts = parts_of(whole)
    assert [len(p.skus) for p in parts] == [SKUS_PER_PART, SKUS_PER_PART, 100 - 2 * SKUS_PER_PART]
    assert [p.part for p in parts] == [0, 1, 2] and [p.amount for p in parts] == [Decimal("100.00"), 0, 0]
    assert Counter(line for p in parts for line in p.lines) == Counter(whole.lines)
    assert {line.name for line in parts[0].lines if line.sku == "S000"} == {"name 0", "again"}
    assert parts_of(whole) == parts and parts_of(parts[1]) == (parts[1],)
    small = purchase("p2", day(0), lines=(("B", "b", 1), ("A", "a", 1)))
    assert parts_of(small) == (small,)
    assert Contribution.from_dict(json.loads(json.dumps(parts[2].to_dict()))) == parts[2]
    assert from_scratch(parts) == from_scratch([whole])
    with pytest.raises(ValueError, match="later part"):
        Contribution("p3", "purchase", T0, "EUR", Decimal(1), (Line("A", "a", 1),), part=1)


@st.composite
def large_histories(draw: st.DrawFn) -> list[tuple[str, Contribution]]:
    """One customer's purchases and returns of up to 7 SKUs (parts of 2 in the test), put in any
    order, some several times with other lines, some removed."""
    pool = []
    for n in range(draw(st.integers(1, 6))):
        at = day(draw(st.integers(0, 6)))
        if draw(st.integers(0, 4)) == 0:
            pool.append(refund(f"int_{n}", at, "1.00"))
            continue
        for _ in range(draw(st.integers(1, 2))):  # versions with other lines
            skus = draw(st.lists(st.sampled_from("ABCDEFG"), min_size=1, max_size=7))
            lines = tuple(
                Line(sku, draw(st.sampled_from(["x", "y"])), draw(st.integers(1, 3))) for sku in skus
            )
            pool.append(
                Contribution(f"int_{n}", "purchase", at, "EUR", Decimal(draw(st.integers(0, 99))), lines)
            )
    history = [("put", c) for c in draw(st.permutations(pool))]
    for position, c in draw(
        st.lists(st.tuples(st.integers(0, len(history)), st.sampled_from(pool)), max_size=4)
    ):
        history.insert(position, ("remove", c))
    return history


@settings(max_examples=150, deadline=None)
@given(large_histories())
def test_applying_parts_one_at_a_time_with_only_their_habits_at_hand_equals_computing_from_scratch(history):
    """As the consumer does: a guard per part, habits kept apart and loaded for the SKUs a part
    touches only."""
    from dataclasses import replace

    from chalicelib.domain.loyalty import aggregates, contributions

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(contributions, "SKUS_PER_PART", 2)
        guards: dict[tuple[str, int], Contribution] = {}
        alive: dict[str, Contribution] = {}
        numbers, habits = Aggregates(), {}
        for op, whole in history:
            new_parts = contributions.parts_of(whole) if op == "put" else ()
            old_count = max((part + 1 for iid, part in guards if iid == whole.interaction_id), default=0)
            for part in reversed(range(max(len(new_parts), old_count))):
                key = (whole.interaction_id, part)
                read = guards.pop(key, None)
                new = new_parts[part] if part < len(new_parts) else None
                if new is not None:
                    guards[key] = new
                touched = aggregates.touched_skus([new] if new else [], [read] if read else [])
                at_hand = replace(numbers, skus={s: habits[s] for s in touched if s in habits})
                remaining = [c for c in guards.values() if c.kind == "purchase"]
                out = apply(at_hand, [new] if new else [], [read] if read else [], remaining.copy)
                for sku in touched:
                    habits.pop(sku, None)
                    if sku in out.skus:
                        habits[sku] = out.skus[sku]
                numbers = replace(out, skus={})
            if op == "put":
                alive[whole.interaction_id] = whole
            else:
                alive.pop(whole.interaction_id, None)
        assert replace(numbers, skus=habits) == from_scratch(alive.values())
        assert numbers.sku_count == len(habits)
