"""Co-purchase counting with an in-memory store: chunks within the transaction limit, and any
order and duplication of records gives the counts computed from scratch."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain import storage
from chalicelib.services.recommendations import PurchaseSeen, RecommendationService
from tests.unit.fakes import FakeCoPurchases


def service(store: FakeCoPurchases) -> RecommendationService:
    return RecommendationService(store, None, None, None, None)


def from_scratch(purchases: list[PurchaseSeen]):
    bought: dict[str, set[str]] = {}
    for p in purchases:
        bought.setdefault(p.customer_id, set()).update(p.skus)
    buyers: dict[str, int] = {}
    pairs: dict[tuple[str, str], int] = {}
    for skus in bought.values():
        for sku in skus:
            buyers[sku] = buyers.get(sku, 0) + 1
        for a, b in combinations(sorted(skus), 2):
            pairs[(a, b)] = pairs.get((a, b), 0) + 1
            pairs[(b, a)] = pairs.get((b, a), 0) + 1
    return buyers, pairs


def test_a_customer_with_hundreds_of_skus_is_counted_in_chunks_that_fit_a_transaction():
    store = FakeCoPurchases()
    many = frozenset(f"SKU-{i:03d}" for i in range(300))
    purchases = [PurchaseSeen("1", "cus_a", many), PurchaseSeen("2", "cus_b", frozenset(list(many)[:2]))]
    assert service(store).apply(purchases) == {}
    assert (store.buyer_counts, store.pair_counts) == from_scratch(purchases)


def test_a_failure_halfway_through_a_sku_is_finished_by_the_replay_without_double_counting():
    store = FakeCoPurchases()
    first = PurchaseSeen("1", "cus_a", frozenset(f"A{i:03d}" for i in range(120)))
    assert service(store).apply([first]) == {}
    late = PurchaseSeen("2", "cus_a", frozenset({"ZZZ"}))
    calls = {"n": 0}
    real = store.count_pairs

    def flaky(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("DynamoDB unavailable")
        real(*args)

    store.count_pairs = flaky
    assert set(service(store).apply([late])) == {"2"}
    store.count_pairs = real
    assert service(store).apply([late, late]) == {}
    assert (store.buyer_counts, store.pair_counts) == from_scratch([first, late])


def test_a_customer_without_a_profile_is_skipped():
    store = FakeCoPurchases()

    def gone(*args):
        raise storage.ConditionFailed("cus_a")

    store.count_buyer = gone
    assert service(store).apply([PurchaseSeen("1", "cus_a", frozenset({"TEA", "MUG"}))]) == {}


records = st.lists(
    st.builds(
        PurchaseSeen,
        st.just("r"),
        st.sampled_from(["cus_a", "cus_b", "cus_c"]),
        st.frozensets(st.sampled_from([f"S{i}" for i in range(8)]), min_size=1, max_size=4),
    ),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(records, st.randoms(use_true_random=False), st.integers(1, 3))
def test_any_order_and_duplication_of_records_gives_the_counts_from_scratch(purchases, rnd, copies):
    delivered = [p for p in purchases for _ in range(copies)]
    rnd.shuffle(delivered)
    store = FakeCoPurchases()
    half = len(delivered) // 2
    assert service(store).apply(delivered[:half]) == {}
    assert service(store).apply(delivered[half:]) == {}
    assert (store.buyer_counts, store.pair_counts) == from_scratch(purchases)
