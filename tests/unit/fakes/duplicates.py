"""Duplicate detection's lookups over FakeCustomers' profiles (by their match keys, as
store/duplicates.py reads the table's), and the not-duplicate pairs and noted candidates."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from chalicelib.domain import names
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.customers import Customer
from chalicelib.domain.storage import NotFound
from chalicelib.store.customer_items import match_keys
from tests.unit.fakes.base import FakeTransaction
from tests.unit.fakes.customers import FakeCustomers


class FakeDuplicates:
    def __init__(self, customers: FakeCustomers) -> None:
        self._customers = customers
        self.pairs: set[tuple[str, str]] = set()
        self.noted: dict[str, list[tuple[str, float]]] = {}

    def candidate_ids(self, customer: Customer, *, consistent: bool = False) -> list[str]:
        keys, words = set(match_keys(customer)), set(names.search_words(customer.name))
        return [
            c.id
            for c in self._customers.profiles.values()
            if c.id != customer.id and (keys & set(match_keys(c)) or words & set(names.search_words(c.name)))
        ]

    def not_duplicates(self, customer_id: str) -> set[str]:
        return {b for a, b in self.pairs if a == customer_id}

    def note_candidates(
        self, t: FakeTransaction, customer_id: str, candidates: Iterable[tuple[str, float]], at: datetime
    ) -> None:
        found = list(candidates)
        t.write(lambda: self.noted.__setitem__(customer_id, found))

    def record_not_duplicate(
        self, customer_id: str, other_id: str, at: datetime, recorded_by: str, audit: AuditEntry
    ) -> bool:
        for cid in (customer_id, other_id):
            if cid not in self._customers.profiles:
                raise NotFound(cid)
        if (customer_id, other_id) in self.pairs:
            return False
        self.pairs |= {(customer_id, other_id), (other_id, customer_id)}
        self._customers.audit.append(audit)
        return True
