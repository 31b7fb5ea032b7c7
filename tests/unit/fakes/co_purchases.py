"""Co-purchase counts and the per-customer guards, as store/co_purchases.py keeps them: each
guard written once (AlreadyExists after), at most PARTNERS_PER_WRITE partners a write."""

from __future__ import annotations

from collections.abc import Iterable

from chalicelib.domain import storage
from chalicelib.domain.recommendations import PARTNERS_PER_WRITE
from tests.unit.fakes.base import Key, page
from tests.unit.fakes.customers import FakeCustomers


class FakeCoPurchases:
    def __init__(self, customers: FakeCustomers | None = None) -> None:
        self.guards: dict[tuple[str, str], set[str]] = {}
        self.buyer_counts: dict[str, int] = {}
        self.pair_counts: dict[tuple[str, str], int] = {}
        self.customers = customers
        self.writes = 0

    def bought(self, customer_id: str) -> set[str]:
        return {key[5:] for (c, key) in self.guards if c == customer_id and key.startswith("HEAD#")}

    def paired(self, customer_id: str, sku: str) -> dict[int, set[str]]:
        prefix = f"PART#{sku}#"
        return {
            int(k[len(prefix) :]): p
            for (c, k), p in self.guards.items()
            if c == customer_id and k.startswith(prefix)
        }

    def _write(self, customer_id: str, key: str, sku: str, partners: Iterable[str], buyer: bool) -> None:
        partners = sorted(partners)
        assert len(partners) <= PARTNERS_PER_WRITE
        if self.customers is not None and self.customers.get(customer_id) is None:
            raise storage.ConditionFailed(customer_id)
        if (customer_id, key) in self.guards:
            raise storage.AlreadyExists(key)
        self.writes += 1
        self.guards[(customer_id, key)] = set(partners)
        if buyer:
            self.buyer_counts[sku] = self.buyer_counts.get(sku, 0) + 1
        for other in partners:
            for pair in ((sku, other), (other, sku)):
                self.pair_counts[pair] = self.pair_counts.get(pair, 0) + 1

    def count_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        self._write(customer_id, f"PART#{sku}#{chunk}", sku, partners, False)

    def count_buyer(self, customer_id: str, sku: str, partners: Iterable[str] = ()) -> None:
        self._write(customer_id, f"HEAD#{sku}", sku, partners, True)

    def forget(self, customer_id: str) -> None:
        """What the purge of a deleted customer does: the guards go, the counts stay."""
        for key in [k for k in self.guards if k[0] == customer_id]:
            del self.guards[key]

    def buyers(self, skus: Iterable[str]) -> dict[str, int]:
        return {sku: self.buyer_counts[sku] for sku in skus if sku in self.buyer_counts}

    def pairs(
        self, sku: str, at_least: int, limit: int, start: Key | None
    ) -> tuple[list[tuple[str, int]], Key | None]:
        rows = sorted(
            ((b, n) for (a, b), n in self.pair_counts.items() if a == sku and n >= at_least),
            key=lambda row: (-row[1], row[0]),
        )
        return page(rows, limit, start, lambda row: row[0])

    def popular(self, limit: int) -> list[tuple[str, int]]:
        return sorted(self.buyer_counts.items(), key=lambda row: (-row[1], row[0]))[:limit]

    # A merge's withdrawal of what a customer counted (store/co_purchases.py's part).

    def guards_of(self, customer_id: str) -> tuple[set[str], dict[str, dict[int, set[str]]]]:
        paired: dict[str, dict[int, set[str]]] = {}
        for (c, key), partners in self.guards.items():
            if c == customer_id and key.startswith("PART#"):
                sku, _, chunk = key[5:].rpartition("#")
                paired.setdefault(sku, {})[int(chunk)] = set(partners)
        return self.bought(customer_id), paired

    def withdrawn_chunks(self, customer_id: str, sku: str) -> set[int]:
        prefix = f"UNPAIRED#{sku}#"
        return {int(k[len(prefix) :]) for (c, k) in self.guards if c == customer_id and k.startswith(prefix)}

    def _take_back(self, sku: str, partners: Iterable[str]) -> None:
        partners = sorted(partners)
        assert len(partners) <= PARTNERS_PER_WRITE
        self.writes += 1
        for other in partners:
            for pair in ((sku, other), (other, sku)):
                self.pair_counts[pair] -= 1

    def withdraw_paired(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        if self.guards.pop((customer_id, f"PART#{sku}#{chunk}"), None) is None:
            raise storage.AlreadyExists(sku)
        self._take_back(sku, partners)

    def withdraw_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None:
        if (customer_id, f"HEAD#{sku}") not in self.guards:
            raise storage.ConditionFailed(customer_id)
        if (customer_id, f"UNPAIRED#{sku}#{chunk}") in self.guards:
            raise storage.AlreadyExists(sku)
        self.guards[(customer_id, f"UNPAIRED#{sku}#{chunk}")] = set()
        self._take_back(sku, partners)

    def withdraw_buyer(self, customer_id: str, sku: str, partners: Iterable[str]) -> None:
        if self.guards.pop((customer_id, f"HEAD#{sku}"), None) is None:
            raise storage.AlreadyExists(sku)
        self.buyer_counts[sku] -= 1
        self._take_back(sku, partners)
