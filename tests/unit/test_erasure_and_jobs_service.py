"""ErasureService and JobService against the in-memory stores: GDPR erasure and export as
jobs, without AWS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Deadline
from chalicelib.domain.jobs import COMPLETED, ERASURE, EXPORT, FAILED
from chalicelib.errors import NotFound
from chalicelib.services.customers import CustomerService
from chalicelib.services.erasure import ErasureService
from chalicelib.services.jobs import JobService

STAFF = Actor("staff-1", "staff", "POST /customers/{customer_id}/erasure")


@pytest.fixture
def customers(store, cursors, clock) -> CustomerService:
    return CustomerService(store.customers, cursors, clock)


@pytest.fixture
def erasure(store, clock) -> ErasureService:
    s = store
    return ErasureService(
        s.customers, s.interactions, s.cases, s.loyalty, s.audit_trail, s.idempotency, clock, s.jobs,
        s.documents, s.identities, new_anonymous_id=lambda: "anon_1",
    )  # fmt: skip


@pytest.fixture
def jobs(store, clock, erasure) -> JobService:
    def document(customer_id: str, deadline):
        yield f'{{"customer": "{customer_id}"}}'

    return JobService(
        store.jobs,
        store.customers,
        clock,
        lambda: store.job_queue,
        lambda: erasure,
        lambda: store.documents,
        document,
    )


@pytest.fixture
def anna(customers):
    return customers.create({"name": "Anna", "email": "anna@example.se", "phone": "+46701234567"}, STAFF)


def test_an_erased_customer_leaves_a_tombstone_and_an_audit_trail_without_personal_data(erasure, store, anna):
    store.idempotency.records[anna.id] = ["req-1"]

    erasure.erase(anna.id, STAFF)

    assert store.customers.get(anna.id) is None
    assert store.customers.erased_at(anna.id) is not None
    assert store.idempotency.records == {}
    created = next(e for e in store.audit if e.action == "create")
    assert {c.field: c.after for c in created.changes}["email"] is None
    assert [e.action for e in store.audit if e.customer_id == anna.id][-1] == "erase"


def test_erasing_again_goes_on_with_step_two_and_an_unknown_customer_is_not_found(erasure, store, anna):
    erasure.erase(anna.id, STAFF)
    erasure.erase(anna.id, STAFF)

    with pytest.raises(NotFound):
        erasure.erase("cus_missing", STAFF)


def test_a_deleted_customer_can_be_erased_and_its_remains_are_marked(erasure, store, anna, clock):
    store.customers.delete(anna, clock.now())
    assert erasure.erasable_remains(anna.id)

    erasure.erase(anna.id, STAFF)

    assert not erasure.erasable_remains(anna.id)


def test_an_erasure_that_loses_a_race_reads_again(erasure, store, customers, anna):
    store.customers.rivals.before_next_write(
        lambda: customers.update(anna.id, {"name": "Anna B"}, None, STAFF)
    )

    erasure.erase(anna.id, STAFF)

    assert store.customers.erased_at(anna.id) is not None


def test_an_erasure_job_runs_once_and_a_second_request_gets_the_running_job(jobs, store, anna):
    job = jobs.request(ERASURE, anna.id, STAFF)

    assert jobs.request(ERASURE, anna.id, STAFF) == job
    assert jobs.run(job.id, Deadline(60)) == "completed"
    assert jobs.run(job.id, Deadline(60)) == "skipped"
    assert jobs.get(job.id).status == COMPLETED
    assert store.customers.erased_at(anna.id) is not None


def test_a_job_for_an_unknown_customer_is_not_found(jobs):
    with pytest.raises(NotFound):
        jobs.request(EXPORT, "cus_missing", STAFF)


def test_a_job_requested_while_another_request_started_one_is_that_job(jobs, store, anna):
    rival = lambda: jobs.request(EXPORT, anna.id, STAFF)  # noqa: E731
    store.jobs.rivals.before_next_write(rival)

    job = jobs.request(EXPORT, anna.id, STAFF)

    assert [j.id for j in store.jobs.jobs.values()] == [job.id]


def test_an_export_job_writes_the_document_and_another_customers_job_is_not_found(
    jobs, store, anna, customers
):
    job = jobs.request(EXPORT, anna.id, STAFF)

    assert jobs.run(job.id, Deadline(60)) == "completed"

    done = jobs.get_of_customer(job.id, anna.id)
    assert store.documents.documents[done.document_key] == f'{{"customer": "{anna.id}"}}'.encode()
    assert jobs.download_url(done, 60).endswith("expires_in=60")
    bo = customers.create({"name": "Bo"}, STAFF)
    with pytest.raises(NotFound):
        jobs.get_of_customer(job.id, bo.id)


def test_an_export_of_a_customer_deleted_before_it_ran_fails(jobs, store, anna, clock):
    job = jobs.request(EXPORT, anna.id, STAFF)
    store.customers.delete(store.customers.get(anna.id), clock.now())

    assert jobs.run(job.id, Deadline(60)) == "failed"
    assert jobs.get(job.id).status == FAILED
    assert store.documents.documents == {}


def test_an_erasure_out_of_time_hands_itself_on_and_the_next_run_completes_it(jobs, store, anna):
    store.interactions.items[(anna.id, "int_1")] = None  # a timeline left to purge
    job = jobs.request(ERASURE, anna.id, STAFF)

    assert jobs.run(job.id, Deadline(-1)) == "handed on"
    assert store.job_queue.messages == [{"job_id": job.id}]
    assert jobs.get(job.id).slices == 1
    assert jobs.run(job.id, Deadline(60)) == "completed"


def test_an_expired_job_is_not_found(jobs, anna, clock):
    job = jobs.request(EXPORT, anna.id, STAFF)
    clock.advance(timedelta(days=8))

    with pytest.raises(NotFound):
        jobs.get(job.id)


def test_a_deleted_customers_timeline_links_and_exports_go_and_their_cases_are_closed(
    erasure, store, anna, clock
):
    store.idempotency.records[anna.id] = ["req-1"]
    store.customers.delete(anna, clock.now())
    closed: list[str] = []

    purged = erasure.after_deletion(anna.id, lambda customer_id: closed.append(customer_id) or 2)

    assert (purged.erased, purged.cases_closed) == (False, 2)
    assert closed == [anna.id]
    assert store.idempotency.records == {}


def test_an_erased_customers_deletion_runs_the_erasure_purge_again_and_closes_nothing(erasure, store, anna):
    erasure.erase(anna.id, STAFF)
    store.idempotency.records[anna.id] = ["req-2"]

    purged = erasure.after_deletion(anna.id, lambda customer_id: pytest.fail("no case is closed"))

    assert purged.erased
    assert store.idempotency.records == {}
