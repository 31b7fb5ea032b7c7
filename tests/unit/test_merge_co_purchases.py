"""A merge's co-purchase counts (RecommendationService.withdraw on the in-memory fake): once
the merged customer's guards are withdrawn and their moved purchases counted as the
survivor's, every SKU's buyers and every pair's count are what they would be had the survivor
made all the purchases of both, whatever the two bought, in chunks or not, interrupted or run
twice."""

from __future__ import annotations

import contextlib
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.domain.clock import Deadline, OutOfTime
from chalicelib.services import recommendations
from chalicelib.services.recommendations import PurchaseSeen, RecommendationService
from tests.unit.fakes.co_purchases import FakeCoPurchases

SKUS = st.sampled_from([f"SKU-{n}" for n in range(9)])
PURCHASES = st.lists(st.frozensets(SKUS, min_size=1, max_size=6), max_size=5)


def _service(counts: FakeCoPurchases) -> RecommendationService:
    return RecommendationService(counts, None, None, None, None)  # type: ignore[arg-type]


def _count(service: RecommendationService, customer_id: str, purchases: list[frozenset[str]]) -> None:
    seen = [PurchaseSeen(f"{customer_id}-{n}", customer_id, skus) for n, skus in enumerate(purchases)]
    assert service.apply(seen) == {}


def _nonzero(counts: FakeCoPurchases) -> tuple[dict, dict]:
    return (
        {k: v for k, v in counts.buyer_counts.items() if v},
        {k: v for k, v in counts.pair_counts.items() if v},
    )


class Crash(Exception):
    pass


class CrashingAfter(FakeCoPurchases):
    """Withdrawals that stop (as an invocation dies) after `left` of them, each all or
    nothing as its transaction is."""

    left: int | None = None

    def _crash(self) -> None:
        if self.left is not None:
            if self.left == 0:
                raise Crash()
            self.left -= 1

    def withdraw_paired(self, *args) -> None:
        self._crash()
        super().withdraw_paired(*args)

    def withdraw_pairs(self, *args) -> None:
        self._crash()
        super().withdraw_pairs(*args)

    def withdraw_buyer(self, *args) -> None:
        self._crash()
        super().withdraw_buyer(*args)


@settings(max_examples=150, deadline=None)
@given(survivor=PURCHASES, merged=PURCHASES, chunk=st.sampled_from([1, 2, 48]), crash_after=st.integers(0, 8))
def test_after_a_merge_the_counts_are_those_of_one_customer_who_bought_it_all(
    survivor, merged, chunk, crash_after
):
    with patch.object(recommendations, "PARTNERS_PER_WRITE", chunk):
        _merge_and_compare(survivor, merged, crash_after)


def _merge_and_compare(survivor, merged, crash_after) -> None:
    counts = CrashingAfter()
    service = _service(counts)
    _count(service, "s", survivor)
    _count(service, "m", merged)

    counts.left = crash_after
    with contextlib.suppress(Crash):
        service.withdraw("m")
    counts.left = None
    service.withdraw("m")  # redelivered: goes on where it stopped
    service.withdraw("m")  # and once more: nothing left to take back
    _count(service, "s", merged)  # the moved purchases, through the survivor's consumer

    alone = FakeCoPurchases()
    _count(_service(alone), "s", survivor + merged)
    assert _nonzero(counts) == _nonzero(alone)
    assert counts.guards_of("m") == (set(), {})  # UNPAIRED# guards are left: the job deletes them


def test_a_chunk_of_pairs_counted_before_its_sku_was_takes_its_pairs_back(monkeypatch):
    monkeypatch.setattr(recommendations, "PARTNERS_PER_WRITE", 1)
    counts = FakeCoPurchases()
    service = _service(counts)
    _count(service, "m", [frozenset({"A", "B", "C"})])
    # The merged customer's count of D stopped after its first chunk of pairs (D with A).
    counts.count_pairs("m", "D", 0, ["A"])
    service.withdraw("m")
    assert _nonzero(counts) == ({}, {})


def test_a_withdrawal_past_its_deadline_stops_and_the_next_run_goes_on():
    counts = FakeCoPurchases()
    service = _service(counts)
    _count(service, "m", [frozenset({"A", "B", "C"})])
    with contextlib.suppress(OutOfTime):
        service.withdraw("m", Deadline(-1))
    assert counts.buyer_counts == {"A": 1, "B": 1, "C": 1}
    service.withdraw("m", Deadline(60))
    assert _nonzero(counts) == ({}, {})
