"""RecommendationService against the in-memory fakes: related products, a customer's ranked
recommendations and their pages, counting from purchases, with no AWS."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction, LineItem
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.products import Product
from chalicelib.errors import NotFound, ValidationFailed
from chalicelib.services.recommendations import PurchaseSeen, RecommendationService
from chalicelib.store.loyalty_items import StoredHabit


@pytest.fixture
def service(store, cursors, clock) -> RecommendationService:
    return RecommendationService(
        store.co_purchases, store.loyalty, store.products, store.interactions, clock, cursors
    )


@pytest.fixture
def catalogue(store, clock):
    for sku in ("TEA", "MUG", "HONEY", "SPOON", "OLD"):
        store.products.products[sku] = Product(
            sku, {"en": sku.title()}, Decimal("5.00"), "EUR", clock.now(), clock.now(), active=sku != "OLD"
        )


def customer(store, clock, customer_id: str) -> str:
    store.customers.add(Customer(customer_id, customer_id.title(), clock.now(), clock.now()))
    return customer_id


def bought(store, clock, customer_id: str, sku: str, times: int = 1, every_days: int = 10, due_in: int = 2):
    """A habit of the customer, the next purchase expected `due_in` days from now."""
    last = clock.now() + timedelta(days=due_in - every_days) if times > 1 else clock.now()
    first = last - timedelta(days=every_days * (times - 1))
    habit = SkuHabit(sku, sku.title(), times, times, first, last, "int_1")
    store.loyalty.habits[(customer_id, sku)] = StoredHabit(habit, 1)


def counted(service, *purchases: tuple[str, set[str]]) -> None:
    seen = [PurchaseSeen(str(n), cid, frozenset(skus)) for n, (cid, skus) in enumerate(purchases)]
    assert service.apply(seen) == {}


def test_an_unknown_customer_has_no_recommendations(service):
    with pytest.raises(NotFound):
        service.for_customer("cus_NOBODY", 10)


def test_a_customer_who_never_bought_gets_the_most_bought_active_products(service, store, clock, catalogue):
    for n, skus in enumerate([{"TEA", "MUG", "OLD"}, {"TEA", "OLD"}, {"TEA", "HONEY", "OLD"}]):
        customer(store, clock, f"cus_{n}")
        counted(service, (f"cus_{n}", skus))
    new = customer(store, clock, "cus_new")

    page = service.for_customer(new, 10)
    assert [(r.product.sku, r.recommendation.reason) for r in page.items] == [
        ("TEA", "popular"),
        ("HONEY", "popular"),
        ("MUG", "popular"),
    ]
    assert page.next_cursor is None


def test_repurchases_come_first_then_what_others_bought_with_the_customers_products(
    service, store, clock, catalogue
):
    for cid in ("cus_a", "cus_b"):
        customer(store, clock, cid)
        counted(service, (cid, {"TEA", "HONEY", "SPOON"}))
    asa = customer(store, clock, "cus_asa")
    counted(service, (asa, {"TEA"}))
    bought(store, clock, asa, "TEA", times=3)

    items = service.for_customer(asa, 10).items
    assert [(r.product.sku, r.recommendation.reason, r.recommendation.because_of) for r in items] == [
        ("TEA", "repurchase_due", None),
        ("HONEY", "bought_together", "TEA"),
        ("SPOON", "bought_together", "TEA"),
    ]
    assert items[1].recommendation.score == pytest.approx(2 / 3)  # 2 of TEA's 3 buyers


def test_a_pair_bought_by_fewer_customers_than_the_minimum_support_is_not_offered(
    service, store, clock, catalogue
):
    customer(store, clock, "cus_a")
    counted(service, ("cus_a", {"TEA", "HONEY"}))
    asa = customer(store, clock, "cus_asa")
    bought(store, clock, asa, "TEA", due_in=30)
    assert service.for_customer(asa, 10).items == []


def test_a_fully_returned_product_is_neither_offered_again_nor_a_reason_for_others(
    service, store, clock, catalogue
):
    for cid in ("cus_a", "cus_b"):
        customer(store, clock, cid)
        counted(service, (cid, {"MUG", "SPOON"}))
    asa = customer(store, clock, "cus_asa")
    bought(store, clock, asa, "MUG", times=2)
    line = LineItem("MUG", "Mug", 2, Decimal("5.00"))
    store.interactions.add(
        Interaction("int_R", asa, "return", "store", clock.now(), clock.now(), currency="EUR", items=(line,))
    )
    assert service.for_customer(asa, 10).items == []


def test_recommendations_are_paged_with_a_cursor_of_that_customer_only(service, store, clock, catalogue):
    for n in range(3):
        customer(store, clock, f"cus_{n}")
        counted(service, (f"cus_{n}", {"TEA", "MUG", "HONEY", "SPOON"}))
    new = customer(store, clock, "cus_new")
    first = service.for_customer(new, 3)
    second = service.for_customer(new, 3, first.next_cursor)
    assert [r.product.sku for r in first.items + second.items] == ["HONEY", "MUG", "SPOON", "TEA"]
    assert second.next_cursor is None
    other = customer(store, clock, "cus_other")
    with pytest.raises(ValidationFailed):
        service.for_customer(other, 3, first.next_cursor)


def test_related_products_are_most_bought_together_first_with_their_confidence(
    service, store, clock, catalogue
):
    for n, skus in enumerate([{"TEA", "HONEY", "MUG"}, {"TEA", "HONEY", "MUG"}, {"TEA", "HONEY"}, {"TEA"}]):
        customer(store, clock, f"cus_{n}")
        counted(service, (f"cus_{n}", skus))

    page = service.related("TEA", 10, None, active_only=True)
    assert [(r.product.sku, r.co_purchases, r.confidence) for r in page.items] == [
        ("HONEY", 3, 0.75),
        ("MUG", 2, 0.5),
    ]
    first = service.related("TEA", 1, None, active_only=True)
    rest = service.related("TEA", 1, first.next_cursor, active_only=True)
    assert [r.product.sku for r in first.items + rest.items] == ["HONEY", "MUG"]


def test_customers_see_related_active_products_only_and_staff_see_all(service, store, clock, catalogue):
    for cid in ("cus_a", "cus_b"):
        customer(store, clock, cid)
        counted(service, (cid, {"TEA", "OLD"}))
    assert service.related("TEA", 10, None, active_only=True).items == []
    assert [r.product.sku for r in service.related("TEA", 10, None, active_only=False).items] == ["OLD"]
    with pytest.raises(NotFound):
        service.related("OLD", 10, None, active_only=True)
    assert [r.product.sku for r in service.related("OLD", 10, None, active_only=False).items] == ["TEA"]
    with pytest.raises(NotFound):
        service.related("NOPE", 10, None, active_only=False)


def test_purchases_of_a_deleted_customer_count_nothing_and_fail_nothing(service, store):
    assert service.apply([PurchaseSeen("1", "cus_gone", frozenset({"TEA", "MUG"}))]) == {}
    assert store.co_purchases.buyer_counts == {}


def test_a_due_habit_is_found_behind_a_hundred_long_stopped_ones(service, store, clock, catalogue):
    asa = customer(store, clock, "cus_asa")
    for n in range(120):  # bought every 10 days, long ago: overdue by far more than twice that
        bought(store, clock, asa, f"STALE-{n:03d}", times=3, due_in=-400 - n)
    bought(store, clock, asa, "TEA", times=3, due_in=2)
    items = service.for_customer(asa, 10).items
    assert [(r.product.sku, r.recommendation.reason) for r in items] == [("TEA", "repurchase_due")]


def test_habits_still_kept_inside_the_aggregates_item_count_as_bought(service, store, clock, catalogue):
    from chalicelib.domain.loyalty.aggregates import Aggregates
    from chalicelib.store.loyalty import StoredLoyalty

    asa = customer(store, clock, "cus_asa")
    last = clock.now() - timedelta(days=8)
    tea = SkuHabit("TEA", "Tea", 2, 2, last - timedelta(days=10), last, "int_1")  # due in 2 days
    aggregates = Aggregates(purchase_count=2, last_purchase_at=last, skus={"TEA": tea}, sku_count=1)
    store.loyalty.aggregates[asa] = StoredLoyalty(asa, aggregates, "bronze", 10, clock.now(), 1)
    items = service.for_customer(asa, 10).items
    assert [(r.product.sku, r.recommendation.reason) for r in items] == [("TEA", "repurchase_due")]


def test_counting_past_the_deadline_fails_what_is_left_and_the_redelivery_counts_it_once(
    service, store, clock
):
    from chalicelib.domain.clock import Deadline

    for cid in ("cus_a", "cus_b"):
        customer(store, clock, cid)
    purchases = [
        PurchaseSeen("1", "cus_a", frozenset({"TEA", "MUG"})),
        PurchaseSeen("2", "cus_b", frozenset({"TEA"})),
    ]
    failures = service.apply(purchases, Deadline(-1))
    assert set(failures) == {"1", "2"} and store.co_purchases.buyer_counts == {}
    assert service.apply(purchases) == {}
    assert store.co_purchases.buyer_counts == {"TEA": 2, "MUG": 1}


def test_a_count_that_keeps_losing_to_other_buyers_is_sent_again_before_it_fails(
    service, store, clock, monkeypatch
):
    from chalicelib.errors import ServiceBusy
    from chalicelib.services import recommendations

    monkeypatch.setattr(recommendations, "BUSY_BACKOFF_S", 0)
    customer(store, clock, "cus_a")
    real, calls = store.co_purchases.count_buyer, []

    def busy_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise ServiceBusy("conflict")
        return real(*args, **kwargs)

    monkeypatch.setattr(store.co_purchases, "count_buyer", busy_twice)
    assert service.apply([PurchaseSeen("1", "cus_a", frozenset({"TEA"}))]) == {}
    assert store.co_purchases.buyer_counts == {"TEA": 1} and len(calls) == 3


@pytest.mark.parametrize(("reuse", "reads"), [(True, 1), (False, 3)])
def test_a_service_for_a_campaign_delivery_reads_the_popular_list_once_for_all_its_customers(
    service, store, cursors, clock, catalogue, monkeypatch, reuse, reads
):
    counted(
        service, (customer(store, clock, "cus_a"), {"TEA", "MUG"}), (customer(store, clock, "cus_b"), {"TEA"})
    )
    picker = RecommendationService(
        store.co_purchases,
        store.loyalty,
        store.products,
        store.interactions,
        clock,
        cursors,
        reuse_popular=reuse,
    )
    real, calls = store.co_purchases.popular, []
    monkeypatch.setattr(store.co_purchases, "popular", lambda limit: calls.append(limit) or real(limit))

    picked = [picker.pick(customer(store, clock, f"cus_new_{n}"), "any") for n in range(3)]
    assert [(p.product.sku, p.recommendation.reason) for p in picked] == [("TEA", "popular")] * 3
    assert len(calls) == reads
