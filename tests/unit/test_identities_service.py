"""IdentityService against the in-memory links: staff linking and the Cognito sign-up trigger,
without AWS."""

from __future__ import annotations

import pytest

from chalicelib.auth import Principal
from chalicelib.domain.audit import Actor
from chalicelib.errors import Conflict, NotFound, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.identities import SIGN_UP, IdentityService, pool_issuer

STAFF = Actor("staff-1", "staff", "PUT /customers/{customer_id}/identities/{subject}")
ISSUER = pool_issuer("eu-north-1", "eu-north-1_TEST")


@pytest.fixture
def customers(store, cursors, clock) -> CustomerService:
    return CustomerService(store.customers, cursors, clock)


@pytest.fixture
def service(store, customers, clock) -> IdentityService:
    return IdentityService(store.identities, customers, clock, ISSUER)


def _sign_up(sub: str, email: str | None = "anna@example.se", verified: str = "true", **attributes) -> dict:
    user = {"sub": sub, "email_verified": verified, **attributes}
    if email:
        user["email"] = email
    return {
        "triggerSource": SIGN_UP,
        "region": "eu-north-1",
        "userPoolId": "eu-north-1_TEST",
        "request": {"userAttributes": user},
    }


def test_staff_link_a_user_once_and_the_token_resolves_to_the_customer(service, customers):
    anna = customers.create({"name": "Anna"}, STAFF)

    identity, created = service.link(anna.id, "user-1", STAFF)
    _, again = service.link(anna.id, "user-1", STAFF)

    assert (identity.customer_id, created, again) == (anna.id, True, False)
    assert service.resolve(Principal("user-1", "customer", ISSUER)) == Principal(anna.id, "customer")
    assert service.resolve(Principal("user-2", "customer", ISSUER)).unlinked


def test_a_user_linked_to_another_customer_is_a_conflict_naming_that_customer(service, customers):
    anna = customers.create({"name": "Anna"}, STAFF)
    bo = customers.create({"name": "Bo"}, STAFF)
    service.link(anna.id, "user-1", STAFF)

    with pytest.raises(Conflict, match=anna.id):
        service.link(bo.id, "user-1", STAFF)


def test_linking_to_an_unknown_customer_is_not_found(service):
    with pytest.raises(NotFound):
        service.link("cus_missing", "user-1", STAFF)


def test_a_subject_too_long_to_store_is_invalid(service, customers):
    anna = customers.create({"name": "Anna"}, STAFF)

    with pytest.raises(ValidationFailed):
        service.link(anna.id, "x" * 2000, STAFF)


def test_unlinking_removes_the_link_and_unlinking_again_is_not_found(service, customers):
    anna = customers.create({"name": "Anna"}, STAFF)
    service.link(anna.id, "user-1", STAFF)

    service.unlink(anna.id, "user-1", STAFF)

    assert service.of_customer(anna.id) == []
    with pytest.raises(NotFound):
        service.unlink(anna.id, "user-1", STAFF)


def test_a_sign_up_with_a_verified_address_is_linked_to_the_customer_with_it(service, customers):
    anna = customers.create({"name": "Anna", "email": "anna@example.se"}, STAFF)

    outcome = service.on_sign_up(_sign_up("user-1"))

    assert (outcome.outcome, outcome.customer_id) == ("linked", anna.id)
    assert service.on_sign_up(_sign_up("user-1")).outcome == "already_linked"


def test_a_sign_up_onto_a_customer_with_a_user_already_is_left_unlinked(service, customers):
    anna = customers.create({"name": "Anna", "email": "anna@example.se"}, STAFF)
    service.link(anna.id, "user-0", STAFF)

    assert service.on_sign_up(_sign_up("user-1")).outcome == "left_unlinked"


def test_a_sign_up_without_a_verified_address_creates_a_customer_with_the_link(service, customers, store):
    outcome = service.on_sign_up(_sign_up("user-1", verified="false", given_name="Anna", family_name="Berg"))

    assert outcome.outcome == "created"
    created = customers.get(outcome.customer_id)
    assert (created.name, created.email) == ("Anna Berg", None)
    assert store.identities.customer_for(ISSUER, "user-1") == created.id


def test_a_sign_up_linked_by_a_concurrent_invocation_creates_no_second_customer(service, customers, store):
    rival = lambda: service.on_sign_up(_sign_up("user-1", email=None))  # noqa: E731
    store.customers.rivals.before_next_write(rival)

    outcome = service.on_sign_up(_sign_up("user-1", email=None))

    assert outcome.outcome == "already_linked"
    assert len(store.customers.profiles) == 1


def test_other_triggers_and_other_pools_are_left_alone(service):
    other_pool = _sign_up("user-1") | {"userPoolId": "eu-north-1_OTHER"}

    assert service.on_sign_up(
        _sign_up("user-1") | {"triggerSource": "PostConfirmation_ConfirmForgotPassword"}
    ).outcome == ("not_a_sign_up")
    assert service.on_sign_up(other_pool).outcome == "another_pool"
