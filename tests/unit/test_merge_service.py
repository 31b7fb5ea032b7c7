"""MergeService with in-memory collaborators: what it asks of storage and when it asks again."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import FrozenClock
from chalicelib.domain.customers import Customer
from chalicelib.domain.storage import EmailTaken, VersionConflict
from chalicelib.errors import Conflict
from chalicelib.services.merges import MergeService
from tests.unit.fakes.customers import FakeCustomers

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
STAFF = Actor("staff-1", "staff", "POST /customers/{customer_id}/merge")


class FakeMerges:
    """Starts fail with each of `failures` in turn, as a lost race would, then succeed."""

    def __init__(self, failures: list[Exception] | None = None, rival=lambda: None) -> None:
        self.failures = list(failures or [])
        self.rival = rival  # what the race was lost to
        self.started: list[tuple] = []

    def get(self, merge_id, *, consistent=False):
        return None

    def resolve(self, customer_id, *, consistent=False):
        return None

    def running(self, customer_id):
        return next((m.id for m, *_ in self.started if customer_id in (m.survivor_id, m.merged_id)), None)

    def not_duplicates(self, customer_id, other_id):
        return False

    def counts(self, customer_id):
        return {"interactions": 0, "cases": 0, "audit": 0}

    def start(self, merge, before, after, merged, audit):
        if self.failures:
            self.rival()
            raise self.failures.pop(0)
        self.started.append((merge, before, after, merged, audit))


@pytest.fixture
def customers() -> FakeCustomers:
    store = FakeCustomers([])
    for customer_id, name in (("cus_s", "Åsa Öberg"), ("cus_m", "Asa Oberg")):
        store.profiles[customer_id] = Customer(customer_id, name, NOW, NOW, version=1)
    return store


def _service(merges: FakeMerges, customers: FakeCustomers) -> MergeService:
    return MergeService(merges, customers, FrozenClock(NOW), new_id=lambda at: "mrg_1")


@pytest.mark.parametrize("lost", [VersionConflict("cus_s"), EmailTaken("asa@example.se")])
def test_a_start_that_loses_a_race_reads_both_profiles_again_and_merges_what_it_read(customers, lost):
    def rival() -> None:
        # The merged customer gained a preferred name meanwhile.
        customers.profiles["cus_m"] = replace(customers.profiles["cus_m"], preferred_name="Åsa", version=2)

    merges = FakeMerges([lost], rival)
    reads = []
    real_get = customers.get

    def counting_get(customer_id, *, consistent=False):
        reads.append((customer_id, consistent))
        return real_get(customer_id)

    customers.get = counting_get
    merge = _service(merges, customers).start("cus_s", "cus_m", {}, STAFF)
    assert merge.id == "mrg_1" and merge.status == "running" and merge.step == "interactions"
    assert reads == [("cus_s", True), ("cus_m", True)] * 2
    [(_, before, after, merged, audit)] = merges.started
    assert (before.version, merged.version, after.preferred_name) == (1, 2, "Åsa")
    assert audit.action == "merge" and audit.customer_id == "cus_s"
    assert ("merged_id", None, "cus_m") in {(c.field, c.before, c.after) for c in audit.changes}


def test_a_start_that_keeps_losing_is_a_conflict_to_retry(customers):
    merges = FakeMerges([VersionConflict("cus_s")] * 20)
    with pytest.raises(Conflict):
        _service(merges, customers).start("cus_s", "cus_m", {}, STAFF)
    assert merges.started == []


def test_a_preview_counts_what_would_move_and_starts_nothing(customers):
    merges = FakeMerges()
    preview = _service(merges, customers).preview("cus_s", "cus_m", {"name": "merged"})
    assert preview.profile.name == "Asa Oberg" and preview.sources["name"] == "merged"
    assert preview.counts == {"interactions": 0, "cases": 0, "audit": 0}
    assert merges.started == []
