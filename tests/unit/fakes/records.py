"""Timelines, complaint cases and the catalogue, as store/interactions.py, store/cases.py and
store/products.py keep them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.cases import ACTIVE_STATUSES, Case, HistoryEntry
from chalicelib.domain.clock import Deadline
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.products import Product, is_sku
from tests.unit.fakes.base import Key, Rivals, page
from tests.unit.fakes.customers import FakeCustomers

# The case item keeps a copy of this many of its latest history entries (store/cases.py).
RECENT_ENTRIES = 20


class FakeInteractions:
    def __init__(self, customers: FakeCustomers) -> None:
        self.items: dict[tuple[str, str], Interaction] = {}
        self.customers = customers
        self.rivals = Rivals()

    def get(self, customer_id: str, interaction_id: str, *, consistent: bool = False) -> Interaction | None:
        return self.items.get((customer_id, interaction_id))

    def add(self, interaction: Interaction, purchase_after_return: Interaction | None = None) -> Interaction:
        self.rivals.run()
        if self.customers.get(interaction.customer_id) is None:
            raise storage.Gone(interaction.customer_id)
        if (interaction.customer_id, interaction.id) in self.items:
            raise storage.AlreadyExists(interaction.id)
        if purchase_after_return is not None:
            key = (purchase_after_return.customer_id, purchase_after_return.id)
            stored = self.items.get(key)
            if stored is None or stored.version != purchase_after_return.version:
                raise storage.VersionConflict(purchase_after_return.id)
            self.items[key] = replace(
                stored, returned=dict(purchase_after_return.returned), version=stored.version + 1
            )
        stored = replace(interaction, version=1)
        self.items[(interaction.customer_id, interaction.id)] = stored
        return stored

    def timeline(
        self, customer_id: str, type_: str | None, limit: int, start: Key | None
    ) -> tuple[list[Interaction], Key | None]:
        rows = sorted(
            (i for (cid, _), i in self.items.items() if cid == customer_id and type_ in (None, i.type)),
            key=lambda i: i.id,
            reverse=True,
        )
        return page(rows, limit, start, lambda i: i.id)

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int:
        keys = [key for key in self.items if key[0] == customer_id]
        for key in keys:
            del self.items[key]
        if deadline is not None and keys:
            deadline.check()  # after a batch, as the real one: a later call goes on from there
        return len(keys)


class FakeCases:
    def __init__(
        self, customers: FakeCustomers, interactions: FakeInteractions, audit: list[AuditEntry]
    ) -> None:
        self.cases: dict[str, Case] = {}
        self.histories: dict[str, list[HistoryEntry]] = {}
        self.customers = customers
        self.interactions = interactions
        self.audit = audit
        self.rivals = Rivals()

    def create(self, case: Case, audit: AuditEntry | None = None) -> str:
        if self.customers.get(case.customer_id) is None:
            return "no_customer"
        if case.id in self.cases:
            return "exists"
        self._store(None, case, audit)
        return "created"

    def get(self, case_id: str, *, consistent: bool = False) -> Case | None:
        return self.cases.get(case_id)

    def update(
        self,
        before: Case,
        after: Case,
        timeline_entry: Interaction | None = None,
        audit: AuditEntry | None = None,
    ) -> Case:
        self.rivals.run()
        stored = self.cases.get(before.id)
        if stored is None or stored.version != before.version:
            raise storage.VersionConflict(before.id)
        if timeline_entry is not None:
            self.interactions.items[(timeline_entry.customer_id, timeline_entry.id)] = replace(
                timeline_entry, version=1
            )
        return self._store(before, after, audit)

    def _store(self, before: Case | None, after: Case, audit: AuditEntry | None) -> Case:
        known = before.history_count if before else 0
        added = after.history_count - known
        self.histories.setdefault(after.id, []).extend(
            after.history[len(after.history) - added :] if added else ()
        )
        stored = replace(
            after, history=after.history[-RECENT_ENTRIES:], version=(before.version if before else 0) + 1
        )
        self.cases[after.id] = stored
        if audit is not None:
            self.audit.append(audit)
        return stored

    def history(self, case_id: str, limit: int, start: Key | None) -> tuple[list[HistoryEntry], Key | None]:
        numbered = list(enumerate(self.histories.get(case_id, []), start=1))
        taken, next_key = page(reversed(numbered), limit, start, lambda n: str(n[0]))
        return [entry for _, entry in taken], next_key

    def whole_history(self, case_id: str) -> tuple[HistoryEntry, ...]:
        return tuple(self.histories.get(case_id, []))

    def list(
        self,
        *,
        status: str | None,
        severity: str | None,
        assignee: str | None,
        due_before: datetime | None,
        limit: int,
        start: Key | None,
    ) -> tuple[list[Case], Key | None]:
        def wanted(case: Case) -> bool:
            if status is None and assignee is None and case.next_deadline is None:
                return False  # without filters: the active cases with a deadline
            due = _due(case)
            return (
                status in (None, case.status)
                and severity in (None, case.severity)
                and assignee in (None, case.assignee)
                and (due_before is None or (due is not None and due < due_before))
            )

        rows = sorted(
            (c for c in self.cases.values() if wanted(c)),
            key=lambda c: (_due(c) is None, _due(c) or c.opened_at, c.id),
        )
        return page(rows, limit, start, lambda c: c.id)

    def of_customer(self, customer_id: str, limit: int, start: Key | None) -> tuple[list[Case], Key | None]:
        rows = sorted(
            (c for c in self.cases.values() if c.customer_id == customer_id),
            key=lambda c: (c.opened_at, c.id),
            reverse=True,
        )
        return page(rows, limit, start, lambda c: c.id)

    def overdue(self, now: datetime) -> Iterable[str]:
        for case in sorted(self.cases.values(), key=lambda c: c.id):
            deadline = case.next_deadline
            if deadline is not None and case.status in ACTIVE_STATUSES and deadline[1] <= now:
                yield case.id

    def delete_all_of(self, customer_id: str) -> int:
        ids = [case_id for case_id, case in self.cases.items() if case.customer_id == customer_id]
        for case_id in ids:
            del self.cases[case_id]
            self.histories.pop(case_id, None)
        return len(ids)


def _due(case: Case) -> datetime | None:
    deadline = case.next_deadline
    return deadline[1] if deadline else None


class FakeProducts:
    def __init__(self, audit: list[AuditEntry]) -> None:
        self.products: dict[str, Product] = {}
        self.audit = audit
        self.rivals = Rivals()

    def get(self, sku: str, consistent: bool = False) -> Product | None:
        return self.products.get(sku) if is_sku(sku) else None

    def get_many(self, skus: Iterable[str]) -> dict[str, Product]:
        return {sku: self.products[sku] for sku in dict.fromkeys(skus) if sku in self.products}

    def add(self, product: Product, audit: AuditEntry) -> Product:
        if product.sku in self.products:
            raise storage.AlreadyExists(product.sku)
        return self._store(replace(product, version=1), audit)

    def update(self, before: Product, after: Product, audit: AuditEntry) -> Product:
        self.rivals.run()
        stored = self.products.get(before.sku)
        if stored is None or stored.version != before.version:
            raise storage.VersionConflict(before.sku)
        return self._store(replace(after, version=before.version + 1), audit)

    def _store(self, product: Product, audit: AuditEntry) -> Product:
        self.products[product.sku] = product
        self.audit.append(audit)
        return product

    def list(self, limit: int, start: Key | None, active: bool | None) -> tuple[list[Product], Key | None]:
        rows = [p for _, p in sorted(self.products.items()) if active in (None, p.active)]
        return page(rows, limit, start, lambda p: p.sku)
