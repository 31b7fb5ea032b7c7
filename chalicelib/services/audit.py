"""Reading the audit trail: who changed what of a customer and their cases, newest first."""

from __future__ import annotations

from collections.abc import Iterator

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import Deadline
from chalicelib.services.ports import AuditTrail, KnownCustomers
from chalicelib.store.pagination import MAX_LIMIT, CursorCodec, Page, page_of


class AuditService:
    def __init__(self, trail: AuditTrail, customers: KnownCustomers, cursors: CursorCodec) -> None:
        self._trail = trail
        self._customers = customers
        self._cursors = cursors

    def of_customer(self, customer_id: str, limit: int, cursor: str | None) -> Page[AuditEntry]:
        """A page of the customer's trail. The trail outlives the profile: a deleted or erased
        customer's is still readable (NotFound only for a customer that never was)."""
        self._customers.require_known(customer_id)
        return page_of(
            self._cursors,
            f"audit:{customer_id}",
            cursor,
            lambda start: self._trail.of_customer(customer_id, limit, start),
        )

    def whole_trail(self, customer_id: str, deadline: Deadline | None = None) -> Iterator[AuditEntry]:
        """Every entry of the customer's trail, read a page at a time; with a `deadline`,
        OutOfTime may stop it between pages."""
        start = None
        while True:
            items, start = self._trail.of_customer(customer_id, MAX_LIMIT, start)
            yield from items
            if start is None:
                return
            if deadline is not None:
                deadline.check()
