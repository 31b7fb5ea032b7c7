"""KeyedRequests against in-memory seeds and pointers: no AWS."""

from __future__ import annotations

from datetime import datetime, timedelta

from chalicelib.domain.attempts import Seed
from chalicelib.services.keyed_requests import KeyedRequests


class Seeds:
    def __init__(self) -> None:
        self.asked: list[tuple[str, datetime, str]] = []

    def seed_for(self, record_id: str, now: datetime, body_sha256: str) -> Seed:
        self.asked.append((record_id, now, body_sha256))
        return Seed(f"crm-seed#{record_id}", b"\x01" * 16, now, False)


class Pointers:
    def __init__(self) -> None:
        self.added: list[tuple[str, str, datetime]] = []

    def add(self, customer_id: str, record_id: str, at: datetime) -> None:
        self.added.append((customer_id, record_id, at))


def test_an_attempt_asks_for_its_seed_at_the_clocks_time(clock):
    seeds = Seeds()
    requests = KeyedRequests(seeds, Pointers(), clock)

    seed = requests.seed("crm-http#abc", "b0d7")

    assert seeds.asked == [("crm-http#abc", clock.now(), "b0d7")]
    assert seed.now == clock.now()


def test_the_owner_of_a_stored_response_is_remembered_with_the_time(clock):
    pointers = Pointers()
    requests = KeyedRequests(Seeds(), pointers, clock)
    clock.advance(timedelta(minutes=5))

    requests.remember_owner("cus_1", "crm-http#abc")

    assert pointers.added == [("cus_1", "crm-http#abc", clock.now())]
