"""The audit trail and the export's gathering, with in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.api.cursors import CursorSigner
from chalicelib.domain.audit import Actor, AuditEntry
from chalicelib.domain.clock import OutOfTime
from chalicelib.errors import NotFound
from chalicelib.services.audit import AuditService
from chalicelib.services.export import ExportService
from chalicelib.store.pagination import Page

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
STAFF = Actor("staff-1", "staff", "PATCH /customers/{customer_id}")


def cursors() -> CursorSigner:
    return CursorSigner(["s"], 3600, lambda: NOW)


def entry(n: int) -> AuditEntry:
    return AuditEntry(f"aud_{n}", "customer", "cus_1", "update", STAFF, NOW, (), "cus_1")


class FakeTrail:
    def __init__(self, entries: list[AuditEntry]) -> None:
        self._entries = entries
        self.pages = 0

    def of_customer(self, customer_id, limit, start):
        self.pages += 1
        offset = start["offset"] if start else 0
        rest = self._entries[offset : offset + limit]
        more = offset + limit < len(self._entries)
        return rest, ({"offset": offset + limit} if more else None)


class KnownCustomers:
    def __init__(self, *known: str) -> None:
        self._known = known

    def require_known(self, customer_id: str) -> None:
        if customer_id not in self._known:
            raise NotFound(f"No customer has the id {customer_id!r}.")


def test_the_trail_is_read_a_page_at_a_time_with_signed_cursors():
    service = AuditService(FakeTrail([entry(n) for n in range(3)]), KnownCustomers("cus_1"), cursors())
    first = service.of_customer("cus_1", 2, None)
    assert [e.id for e in first.items] == ["aud_0", "aud_1"]
    second = service.of_customer("cus_1", 2, first.next_cursor)
    assert ([e.id for e in second.items], second.next_cursor) == (["aud_2"], None)


def test_the_trail_of_a_customer_that_never_was_is_not_found():
    with pytest.raises(NotFound):
        AuditService(FakeTrail([]), KnownCustomers(), cursors()).of_customer("cus_9", 10, None)


def test_the_whole_trail_is_every_entry_across_pages():
    trail = FakeTrail([entry(n) for n in range(250)])
    service = AuditService(trail, KnownCustomers("cus_1"), cursors())
    assert len(list(service.whole_trail("cus_1"))) == 250
    assert trail.pages == 3


class Expired:
    def check(self) -> None:
        raise OutOfTime()


def test_the_whole_trail_stops_between_pages_when_time_is_up():
    service = AuditService(FakeTrail([entry(n) for n in range(150)]), KnownCustomers("cus_1"), cursors())
    read = service.whole_trail("cus_1", Expired())
    with pytest.raises(OutOfTime):
        list(read)


class Stub:
    """Collaborators of the export that answer from dicts."""

    def __init__(self, **answers) -> None:
        self.__dict__.update(answers)


class FixedClock:
    def now(self) -> datetime:
        return NOW


def test_an_export_gathers_the_profile_and_loyalty_first_and_reads_the_lists_as_they_are_iterated():
    calls: list[str] = []

    def page(name, items):
        def read(customer_id, *args):
            calls.append(name)
            return Page(items, None)

        return read

    service = ExportService(
        Stub(get=lambda customer_id: calls.append("customer") or "the customer"),
        Stub(complete_view=lambda customer_id: calls.append("loyalty") or "the view"),
        Stub(timeline=page("timeline", ["int_1"])),
        Stub(of_customer=page("cases", ["case_1"]), with_whole_history=lambda case: f"{case} whole"),
        Stub(whole_trail=lambda customer_id, deadline=None: iter(["aud_1"])),
        FixedClock(),
    )
    data = service.gather("cus_1")
    assert (data.customer, data.loyalty, data.exported_at) == ("the customer", "the view", NOW)
    assert calls == ["customer", "loyalty"]
    assert (list(data.interactions), list(data.cases), list(data.audit)) == (
        ["int_1"],
        ["case_1 whole"],
        ["aud_1"],
    )
    assert calls == ["customer", "loyalty", "timeline", "cases"]


def test_the_export_of_an_unknown_customer_is_not_found_before_anything_else_is_read():
    def unknown(customer_id):
        raise NotFound("No customer has the id 'cus_9'.")

    service = ExportService(Stub(get=unknown), None, None, None, None, FixedClock())
    with pytest.raises(NotFound):
        service.gather("cus_9")
