"""GDPR export: gathering everything we hold on a person. The timeline, the cases (each with
its whole history) and the audit trail are read a page at a time while the document is
written, so an export of any size holds no more than a page in memory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, TypeVar

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.cases import Case
from chalicelib.domain.clock import Clock, Deadline
from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction
from chalicelib.store.pagination import MAX_LIMIT, Page

if TYPE_CHECKING:
    from chalicelib.services.loyalty import LoyaltyView

T = TypeVar("T")


class Customers(Protocol):
    def get(self, customer_id: str) -> Customer: ...


class Loyalty(Protocol):
    def complete_view(self, customer_id: str) -> LoyaltyView: ...


class Timeline(Protocol):
    def timeline(
        self, customer_id: str, type_: str | None, limit: int, cursor: str | None
    ) -> Page[Interaction]: ...


class Cases(Protocol):
    def of_customer(self, customer_id: str, limit: int, cursor: str | None) -> Page[Case]: ...

    def with_whole_history(self, case: Case) -> Case: ...


class Trail(Protocol):
    def whole_trail(self, customer_id: str, deadline: Deadline | None = None) -> Iterator[AuditEntry]: ...


@dataclass(frozen=True)
class CustomerData:
    """What an export holds. The three lists are read as they are iterated, once."""

    exported_at: datetime
    customer: Customer
    loyalty: LoyaltyView
    interactions: Iterable[Interaction]
    cases: Iterable[Case]
    audit: Iterable[AuditEntry]


def _all(page: Callable[[str | None], Page[T]], deadline: Deadline | None) -> Iterator[T]:
    cursor = None
    while True:
        result = page(cursor)
        yield from result.items
        cursor = result.next_cursor
        if cursor is None:
            return
        if deadline is not None:
            deadline.check()


class ExportService:
    def __init__(
        self,
        customers: Customers,
        loyalty: Loyalty,
        timeline: Timeline,
        cases: Cases,
        audit: Trail,
        clock: Clock,
    ) -> None:
        self._customers = customers
        self._loyalty = loyalty
        self._timeline = timeline
        self._cases = cases
        self._audit = audit
        self._clock = clock

    def gather(self, customer_id: str, deadline: Deadline | None = None) -> CustomerData:
        """The customer's data (NotFound for an unknown customer). With a `deadline`, OutOfTime
        may stop the reading of the lists between pages."""
        customer = self._customers.get(customer_id)
        loyalty = self._loyalty.complete_view(customer_id)
        timeline, cases = self._timeline, self._cases
        interactions = _all(lambda cursor: timeline.timeline(customer_id, None, MAX_LIMIT, cursor), deadline)
        listed = _all(lambda cursor: cases.of_customer(customer_id, MAX_LIMIT, cursor), deadline)
        return CustomerData(
            exported_at=self._clock.now(),
            customer=customer,
            loyalty=loyalty,
            interactions=interactions,
            cases=(cases.with_whole_history(case) for case in listed),
            audit=self._audit.whole_trail(customer_id, deadline),
        )
