"""EmailChangeService against the in-memory customers: the pending change, its limits, its
link mailed once, and its confirmation, without AWS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.domain.audit import Actor
from chalicelib.domain.email_change import ConfirmationLinks, EmailChangeLimits
from chalicelib.domain.storage import MailRefused
from chalicelib.errors import Conflict, Gone, TooManyRequests, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.email_change import EmailChangeService

ME = Actor("cus", "customer", "PATCH /me")


@pytest.fixture
def profiles(store, cursors, clock) -> CustomerService:
    return CustomerService(store.customers, cursors, clock)


@pytest.fixture
def links() -> ConfirmationLinks:
    return ConfirmationLinks("unit-test-link-secret", "https://crm.example")


@pytest.fixture
def service(store, profiles, links, clock) -> EmailChangeService:
    limits = EmailChangeLimits(cooldown=timedelta(seconds=60), per_day=3)
    return EmailChangeService(store.customers, profiles, links, clock, lambda: store.mailer, limits)


@pytest.fixture
def anna(profiles):
    return profiles.create({"name": "Anna", "email": "anna@example.se"}, ME)


def test_a_new_address_is_pending_not_applied_and_the_other_fields_apply_at_once(service, anna):
    customer, change = service.change_my_details(
        anna.id, {"email": "new@example.se", "name": "Anna B"}, None, ME
    )

    assert (customer.email, customer.name) == ("anna@example.se", "Anna B")
    assert (change.email, change.pending) == ("new@example.se", True)


def test_the_link_is_mailed_once_to_the_new_address(service, store, anna):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)

    assert service.send_link(anna.id, change.nonce) == "sent"
    assert service.send_link(anna.id, change.nonce) == "already_sent"
    assert [to for to, _, _ in store.mailer.sent] == ["new@example.se"]


def test_a_refused_link_is_given_back_and_sent_on_the_redelivery(service, store, anna):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)
    store.mailer.refuse_next()

    with pytest.raises(MailRefused):
        service.send_link(anna.id, change.nonce)
    assert service.send_link(anna.id, change.nonce) == "sent"


def test_asking_again_within_the_cooldown_is_too_many_requests_whatever_the_address(service, anna, clock):
    service.change_my_details(anna.id, {"email": "one@example.se"}, None, ME)
    clock.advance(timedelta(seconds=10))

    with pytest.raises(TooManyRequests) as raised:
        service.change_my_details(anna.id, {"email": "two@example.se"}, None, ME)
    assert raised.value.headers["Retry-After"] == "50"


def test_only_so_many_changes_a_day_are_mailed(service, anna, clock):
    for n in range(3):
        service.change_my_details(anna.id, {"email": f"n{n}@example.se"}, None, ME)
        clock.advance(timedelta(minutes=2))

    with pytest.raises(TooManyRequests):
        service.change_my_details(anna.id, {"email": "more@example.se"}, None, ME)


def test_a_newer_change_replaces_the_older_link(service, links, anna, clock):
    _, first = service.change_my_details(anna.id, {"email": "one@example.se"}, None, ME)
    clock.advance(timedelta(minutes=2))
    _, second = service.change_my_details(anna.id, {"email": "two@example.se"}, None, ME)

    assert service.send_link(anna.id, first.nonce) == "replaced"
    with pytest.raises(Gone):
        service.confirm(links.token(first))
    assert service.confirm(links.token(second)).status == "confirmed"


def test_confirming_applies_the_address_once(service, profiles, links, anna):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)
    token = links.token(change)

    assert service.describe(token).status == "pending"
    assert service.confirm(token).status == "confirmed"
    assert service.confirm(token).status == "already_confirmed"
    assert service.describe(token).status == "already_confirmed"
    assert profiles.get(anna.id).email == "new@example.se"


def test_an_address_another_customer_took_meanwhile_is_a_conflict_for_the_confirmer(
    service, profiles, links, anna
):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)
    profiles.create({"name": "Bo", "email": "new@example.se"}, ME)

    with pytest.raises(Conflict):
        service.confirm(links.token(change))
    assert profiles.get(anna.id).email == "anna@example.se"


def test_an_expired_link_is_gone_and_an_edited_one_is_a_bad_request(service, links, anna, clock):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)
    token = links.token(change)

    with pytest.raises(ValidationFailed):
        service.confirm(token[:-3] + "AAA")
    clock.advance(timedelta(days=2))
    with pytest.raises(Gone):
        service.confirm(token)
    assert service.send_link(anna.id, change.nonce) == "expired"


def test_sending_the_current_address_withdraws_the_pending_change(service, store, links, anna):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)

    _, none = service.change_my_details(anna.id, {"email": "ANNA@example.se"}, None, ME)

    assert none is None
    assert store.customers.email_change(anna.id).withdrawn_at is not None
    assert service.send_link(anna.id, change.nonce) == "withdrawn"
    with pytest.raises(Gone):
        service.confirm(links.token(change))


def test_a_staff_change_of_address_withdraws_the_pending_change(service, profiles, store, anna):
    service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)

    profiles.update(anna.id, {"email": "staff@example.se"}, None, ME)

    assert store.customers.email_change(anna.id).withdrawn_at is not None


def test_the_link_of_a_deleted_customer_is_gone(service, store, links, anna, clock):
    _, change = service.change_my_details(anna.id, {"email": "new@example.se"}, None, ME)
    store.customers.delete(store.customers.get(anna.id), clock.now())

    assert service.send_link(anna.id, change.nonce) == "customer_gone"
    with pytest.raises(Gone):
        service.confirm(links.token(change))
