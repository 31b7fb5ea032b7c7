"""What a request sent with an Idempotency-Key leaves behind besides its stored response: the
seed all its attempts run under (domain/attempts.py), and a pointer from the customer whose
data the stored response holds, so that erasing the customer finds the response too."""

from __future__ import annotations

from chalicelib.domain.attempts import Seed
from chalicelib.domain.clock import Clock
from chalicelib.services.ports import AttemptSeeds, ResponsePointers


class KeyedRequests:
    def __init__(self, seeds: AttemptSeeds, pointers: ResponsePointers, clock: Clock) -> None:
        self._seeds = seeds
        self._pointers = pointers
        self._clock = clock

    def seed(self, record_id: str, body_sha256: str) -> Seed:
        """The seed of this attempt: an earlier attempt's that committed with the same body,
        else a fresh one. storage.KeyReused if an earlier attempt committed another body."""
        return self._seeds.seed_for(record_id, self._clock.now(), body_sha256)

    def remember_owner(self, customer_id: str, record_id: str) -> None:
        """The stored response `record_id` holds data of `customer_id`."""
        self._pointers.add(customer_id, record_id, self._clock.now())
