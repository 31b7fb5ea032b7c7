"""CaseService against the in-memory cases: opening, acknowledging, the status flow, SLA
escalation and the closing of a deleted customer's cases, without AWS."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.storage import MailRefused
from chalicelib.errors import Conflict, NotFound, PreconditionFailed
from chalicelib.services.cases import CaseService
from chalicelib.services.customers import CustomerService

STAFF = Actor("staff-1", "staff", "PATCH /cases/{case_id}")
SLA = {s: (timedelta(hours=4), timedelta(days=2)) for s in ("low", "medium", "high", "critical")}


@pytest.fixture
def service(store, cursors, clock) -> CaseService:
    numbers = itertools.count(1)
    return CaseService(
        store.cases,
        store.customers,
        clock,
        SLA,
        lambda: store.mailer,
        lambda: store.follow_ups,
        cursors,
        new_interaction_id=lambda at: f"int_ack_{next(numbers):04d}",
    )


@pytest.fixture
def customers(store, cursors, clock) -> CustomerService:
    return CustomerService(store.customers, cursors, clock)


@pytest.fixture
def customer(customers):
    return customers.create({"name": "Anna Berg", "email": "anna@example.se"}, STAFF)


def _complaint(customer_id: str, clock, n: int = 1) -> Interaction:
    now = clock.now()
    return Interaction(
        id=f"int_complaint_{n}", customer_id=customer_id, type="complaint", channel="email",
        occurred_at=now, created_at=now, subject="Broken lid", severity="high",
    )  # fmt: skip


def test_a_complaint_opens_one_case_with_its_deadlines_and_asks_for_its_follow_up(
    service, store, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))

    again = service.open_for_complaint(_complaint(customer.id, clock))

    assert again.id == case.id
    assert (case.status, case.first_response_due, case.resolution_due) == (
        "open",
        clock.now() + timedelta(hours=4),
        clock.now() + timedelta(days=2),
    )
    assert store.follow_ups.messages == [{"type": "case.follow_up", "case_id": case.id}] * 2


def test_a_complaint_of_a_customer_deleted_before_it_was_read_opens_no_case(service, store, customer, clock):
    store.customers.delete(customer, clock.now())

    assert service.open_for_complaint(_complaint(customer.id, clock)) is None
    assert store.cases.cases == {}


def test_the_acknowledgement_is_mailed_once_recorded_on_the_timeline_and_acknowledges_the_case(
    service, store, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))

    acknowledged = service.acknowledge(case.id)
    service.acknowledge(case.id)

    assert acknowledged.status == "acknowledged"
    assert acknowledged.contact_status == "acknowledged_by_email"
    assert [to for to, _, _ in store.mailer.sent] == ["anna@example.se"]
    entry = store.interactions.get(customer.id, acknowledged.ack_interaction_id)
    assert (entry.type, entry.direction, entry.case_id) == ("message", "outbound", case.id)


def test_a_refused_acknowledgement_gives_its_claim_back_so_the_redelivery_sends_it(
    service, store, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))
    store.mailer.refuse_next()

    with pytest.raises(MailRefused):
        service.acknowledge(case.id)
    assert service.get(case.id).ack_interaction_id is None

    assert service.acknowledge(case.id).status == "acknowledged"
    assert len(store.mailer.sent) == 1


def test_a_customer_without_an_address_gets_a_note_instead_of_a_mail(service, store, customers, clock):
    silent = customers.create({"name": "Bo"}, STAFF)
    case = service.open_for_complaint(_complaint(silent.id, clock))

    noted = service.acknowledge(case.id)

    assert (noted.status, noted.contact_status) == ("open", "no_email_address")
    assert store.mailer.sent == []


def test_staff_move_a_case_along_its_flow_with_a_resolution_and_the_history_records_each_step(
    service, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))

    service.change(case.id, {"status": "acknowledged"}, None, STAFF)
    service.change(case.id, {"assignee": "staff-2", "status": "in_progress"}, None, STAFF)
    resolved = service.change(case.id, {"status": "resolved", "resolution": "Replaced"}, None, STAFF)
    closed = service.change(case.id, {"status": "closed", "satisfaction": 5}, None, STAFF)

    assert (resolved.resolution, closed.status, closed.satisfaction) == ("Replaced", "closed", 5)
    history = service.history(case.id, 100, None).items
    assert [h.to_status for h in history if h.to_status] == [
        "closed",
        "resolved",
        "in_progress",
        "acknowledged",
        "open",
    ]


def test_a_transition_the_flow_does_not_allow_is_a_conflict_on_status(service, customer, clock):
    case = service.open_for_complaint(_complaint(customer.id, clock))

    with pytest.raises(Conflict) as raised:
        service.change(case.id, {"status": "closed"}, None, STAFF)
    assert raised.value.errors[0].field == "status"


def test_a_closed_case_cannot_be_changed(service, store, customer, clock):
    case = service.open_for_complaint(_complaint(customer.id, clock))
    store.customers.delete(customer, clock.now())
    service.close_cases_of_deleted_customer(customer.id)

    with pytest.raises(Conflict):
        service.change(case.id, {"note": "Too late"}, None, STAFF)


def test_a_stale_if_match_is_a_412_and_a_lost_race_without_one_is_applied_on_top(
    service, store, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))
    with pytest.raises(PreconditionFailed):
        service.change(case.id, {"note": "x"}, if_match=service.get(case.id).version + 1, actor=STAFF)
    rival = lambda: service.change(case.id, {"assignee": "staff-9"}, None, STAFF)  # noqa: E731
    store.cases.rivals.before_next_write(rival)

    changed = service.change(case.id, {"note": "Called the customer"}, None, STAFF)

    assert (changed.assignee, changed.history[-1].note) == ("staff-9", "Called the customer")


def test_an_unknown_case_is_not_found(service, customer):
    with pytest.raises(NotFound):
        service.get("case_missing")
    with pytest.raises(NotFound):
        service.of_customer("cus_missing", 10, None)


def test_a_case_past_its_first_response_deadline_is_escalated_once_per_missed_deadline(
    service, customer, clock
):
    case = service.open_for_complaint(_complaint(customer.id, clock))
    clock.advance(timedelta(hours=5))

    assert service.escalate_overdue() == 1
    assert service.escalate_overdue() == 0
    clock.advance(timedelta(days=2))
    assert service.escalate_overdue() == 1
    assert service.get(case.id).escalation_level == 2


def test_the_cases_of_a_deleted_customer_are_closed_once_each(service, store, customer, clock):
    for n in range(3):
        service.open_for_complaint(_complaint(customer.id, clock, n))
    store.customers.delete(customer, clock.now())

    assert service.close_cases_of_deleted_customer(customer.id) == 3
    assert service.close_cases_of_deleted_customer(customer.id) == 0
    assert {c.closed_reason for c in store.cases.cases.values()} == {"customer_deleted"}


def test_cases_list_due_first_and_a_customers_cases_page_newest_first(service, customer, clock):
    opened = []
    for n in range(3):
        opened.append(service.open_for_complaint(_complaint(customer.id, clock, n)))
        clock.advance(timedelta(minutes=1))

    due = service.list(status=None, severity=None, assignee=None, due_before=None, limit=10, cursor=None)
    first = service.of_customer(customer.id, 2, None)
    second = service.of_customer(customer.id, 2, first.next_cursor)

    assert [c.id for c in due.items] == [c.id for c in opened]
    assert [c.id for c in first.items + second.items] == [c.id for c in reversed(opened)]


def test_the_whole_history_is_read_beyond_what_the_case_item_keeps(service, customer, clock):
    case = service.open_for_complaint(_complaint(customer.id, clock))
    for n in range(25):
        case = service.change(case.id, {"note": f"note {n}"}, None, STAFF)

    whole = service.with_whole_history(case)

    assert (len(case.history), len(whole.history), whole.history_count) == (20, 26, 26)
