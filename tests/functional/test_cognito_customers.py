"""Self-service with Cognito tokens: a user pool's `sub` is a UUID, so a customer token reaches
/me through the link of its user to a customer — made by the post-confirmation trigger (by
verified email, or a new customer) or by staff. RS256 tokens, verified against a JWKS."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from chalicelib import wiring
from chalicelib.api import authentication
from chalicelib.auth import JWKSVerifier
from tests.functional.conftest import Api, assert_problem
from tests.unit.test_auth import (
    CLIENT_ID,
    JWKS_URL,
    KID,
    POOL_ISSUER,
    _new_rsa_key,
    access_claims,
    id_claims,
    jwks_of,
    rs_token,
)

REGION, POOL_ID = POOL_ISSUER.split("/")[-2].split(".")[1], POOL_ISSUER.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def pool_key():
    return _new_rsa_key()


@pytest.fixture(autouse=True)
def cognito_stage(monkeypatch, pool_key):
    """The app as a cognito stage: tokens of the test pool, verified with its JWKS."""
    settings = dataclasses.replace(wiring.get_settings(), auth_mode="cognito", jwt_issuer=POOL_ISSUER)
    verifier = JWKSVerifier(JWKS_URL, POOL_ISSUER, CLIENT_ID, fetch_jwks=lambda url: jwks_of((pool_key, KID)))
    monkeypatch.setattr(wiring, "get_settings", lambda: settings)
    monkeypatch.setattr(authentication, "_verifier", lambda: verifier)


def user_api(client, pool_key, sub: str, *, access: bool = False, groups=("customer",)) -> Api:
    claims = (access_claims if access else id_claims)(sub=sub, **{"cognito:groups": list(groups)})
    return Api(client, rs_token(claims, pool_key))


def staff_api(client, pool_key) -> Api:
    return user_api(client, pool_key, "staff-user", groups=("staff",))


def sign_up(client, sub: str, source: str = "PostConfirmation_ConfirmSignUp", **attributes) -> dict:
    event = {
        "version": "1",
        "region": REGION,
        "userPoolId": POOL_ID,
        "userName": sub,
        "triggerSource": source,
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": CLIENT_ID},
        "request": {"userAttributes": {"sub": sub, "cognito:user_status": "CONFIRMED", **attributes}},
        "response": {},
    }
    reply = client.lambda_.invoke("link_customer_on_sign_up", event)
    assert reply.payload == event  # Cognito expects its event back
    return event


def test_a_user_who_signs_up_with_a_customers_verified_email_reaches_that_profile(client, pool_key):
    staff = staff_api(client, pool_key)
    customer = staff.create_customer(name="Jyrki Mäkelä", email="jyrki@example.fi", locale="fi")
    sub = str(uuid.uuid4())
    for _ in range(2):  # Cognito may invoke the trigger again
        sign_up(client, sub, email="Jyrki@Example.fi", email_verified="true")

    for access in (False, True):
        me = user_api(client, pool_key, sub, access=access).get("/me")
        assert (me.status, me.json["id"], me.json["email"]) == (200, customer["id"], "jyrki@example.fi")
    [identity] = staff.get(f"/customers/{customer['id']}/identities").json["items"]
    assert (identity["issuer"], identity["subject"], identity["linked_by"]) == (POOL_ISSUER, sub, "sign-up")
    audit = staff.get(f"/customers/{customer['id']}/audit").json["items"]
    assert [e["action"] for e in audit].count("link_identity") == 1


def test_a_new_or_unverified_address_makes_a_new_customer(client, pool_key):
    staff = staff_api(client, pool_key)
    known = staff.create_customer(name="Saša Kovačič", email="sasa@example.si")
    new_sub, unverified_sub = str(uuid.uuid4()), str(uuid.uuid4())
    sign_up(
        client,
        new_sub,
        email="ria@example.ph",
        email_verified="true",
        given_name="Maria",
        family_name="Dela Cruz",
        locale="tl",
    )
    sign_up(client, unverified_sub, email="sasa@example.si", email_verified="false", name="Not Saša")

    ria = user_api(client, pool_key, new_sub).get("/me").json
    assert (ria["name"], ria["email"], ria["locale"]) == ("Maria Dela Cruz", "ria@example.ph", "tl")
    other = user_api(client, pool_key, unverified_sub).get("/me").json
    assert other["id"] != known["id"] and (other["name"], other["email"]) == ("Not Saša", None)


def test_a_token_whose_user_is_linked_to_no_customer_gets_403_on_self_service_only(client, pool_key):
    sub = str(uuid.uuid4())
    sign_up(
        client,
        sub,
        source="PostConfirmation_ConfirmForgotPassword",
        email="x@example.com",
        email_verified="true",
    )
    stranger = user_api(client, pool_key, sub)
    for method, path in (("GET", "/me"), ("PATCH", "/me"), ("GET", "/me/cases")):
        problem = assert_problem(stranger.request(method, path, {} if method == "PATCH" else None), 403)
        assert problem["type"] == "urn:problem-type:crm:not-linked" and sub not in problem["detail"]
    assert stranger.get("/products").status == 200


def test_staff_link_and_unlink_a_user(client, pool_key):
    staff = staff_api(client, pool_key)
    customer = staff.create_customer(name="Åsa Öberg")
    other = staff.create_customer(name="Björn Lindqvist")
    sub = str(uuid.uuid4())
    path = f"/customers/{customer['id']}/identities/{sub}"

    linked = staff.request("PUT", path)
    assert (linked.status, linked.json["subject"], linked.json["linked_by"]) == (201, sub, "staff-user")
    assert staff.request("PUT", path).status == 200
    assert_problem(staff.request("PUT", f"/customers/{other['id']}/identities/{sub}"), 409, "subject")
    assert_problem(staff.request("PUT", f"/customers/cus_NOPE/identities/{sub}"), 404)
    assert user_api(client, pool_key, sub).get("/me").json["id"] == customer["id"]

    assert staff.delete(path).status == 204
    assert_problem(staff.delete(path), 404)
    assert staff.get(f"/customers/{customer['id']}/identities").json == {"items": []}
    assert_problem(user_api(client, pool_key, sub).get("/me"), 403)


def test_an_erased_customer_keeps_no_link_to_their_user(client, pool_key, pump):
    staff = staff_api(client, pool_key)
    sub = str(uuid.uuid4())
    sign_up(client, sub, email="gone@example.com", email_verified="true", name="Soon Gone")
    me = user_api(client, pool_key, sub)
    customer_id = me.get("/me").json["id"]
    assert staff.post(f"/customers/{customer_id}/erase").status == 202
    pump.drain()  # the erasure job
    assert_problem(me.get("/me"), 403)
    sign_up(client, sub, email="gone@example.com", email_verified="true", name="Back Again")
    assert me.get("/me").json["id"] != customer_id  # a new customer: nothing led back to the old one


def test_a_fresh_sign_up_in_no_group_reaches_self_service_through_its_link_and_nothing_more(client, pool_key):
    staff = staff_api(client, pool_key)
    sub, stranger_sub = str(uuid.uuid4()), str(uuid.uuid4())
    sign_up(client, sub, email="ny.kund@example.fi", email_verified="true", name="Ny Kund")
    for access in (False, True):  # RS256 tokens of the pool with no cognito:groups claim at all
        claims = (access_claims if access else id_claims)(sub=sub, **{"cognito:groups": None})
        fresh = Api(client, rs_token(claims, pool_key))
        me = fresh.get("/me")
        assert (me.status, me.json["email"]) == (200, "ny.kund@example.fi")
        assert fresh.get("/products").status == 200
        for method, path in (("GET", "/customers"), ("GET", f"/customers/{me.json['id']}")):
            assert_problem(fresh.request(method, path), 403)  # never staff
    assert staff.get(f"/customers/{me.json['id']}").status == 200

    stranger = user_api(client, pool_key, stranger_sub, groups=())  # linked to no one
    for path in ("/me", "/products"):
        assert assert_problem(stranger.get(path), 403)["type"] == "urn:problem-type:crm:not-linked"


def test_a_sign_up_never_takes_over_a_customer_who_already_has_a_sign_in_user(client, pool_key):
    """The address may have reached the profile by someone else's doing (a confirmation link a
    mail scanner opened, a careless identity provider): its existing user keeps it alone."""
    staff = staff_api(client, pool_key)
    first_sub, second_sub = str(uuid.uuid4()), str(uuid.uuid4())
    sign_up(client, first_sub, email="delad@example.se", email_verified="true", name="Först")
    owner = user_api(client, pool_key, first_sub).get("/me").json

    sign_up(client, second_sub, email="Delad@example.se", email_verified="true", name="Sedan")

    assert_problem(user_api(client, pool_key, second_sub).get("/me"), 403)
    identities = staff.get(f"/customers/{owner['id']}/identities").json["items"]
    assert [i["subject"] for i in identities] == [first_sub]
    assert [c["id"] for c in staff.get("/customers?email=delad@example.se").json["items"]] == [owner["id"]]
    # Staff decide: link the user where it belongs.
    assert staff.request("PUT", f"/customers/{owner['id']}/identities/{second_sub}").status == 201
    assert user_api(client, pool_key, second_sub).get("/me").json["id"] == owner["id"]


def test_a_retried_trigger_racing_the_first_invocation_leaves_one_customer(client, pool_key, monkeypatch):
    """Cognito invokes the trigger again after 5 s without an answer, while the first invocation
    may still run: the first one's customer and link are one transaction, conditional on the
    link, so whichever commits second writes nothing."""
    from chalicelib.store.customers import CustomerRepository

    staff = staff_api(client, pool_key)
    sub = str(uuid.uuid4())
    original, retried = CustomerRepository.add, []

    def retry_lands_first(self, customer, audit=None, also=None):
        if not retried:
            retried.append(True)
            sign_up(client, sub, name="Utan Adress")  # the retry runs to the end meanwhile
        return original(self, customer, audit, also)

    monkeypatch.setattr(CustomerRepository, "add", retry_lands_first)
    sign_up(client, sub, name="Utan Adress")

    me = user_api(client, pool_key, sub).get("/me").json
    customers = staff.get("/customers?q=utan").json["items"]
    assert [c["id"] for c in customers] == [me["id"]]  # no customer without its user
    assert [e["action"] for e in staff.get(f"/customers/{me['id']}/audit").json["items"]].count(
        "link_identity"
    ) == 1


def test_a_sign_up_of_another_user_pool_changes_nothing(client, pool_key):
    staff = staff_api(client, pool_key)
    sub = str(uuid.uuid4())
    event = {
        "version": "1",
        "region": REGION,
        "userPoolId": f"{REGION}_OTHERPOOL",
        "userName": sub,
        "triggerSource": "PostConfirmation_ConfirmSignUp",
        "callerContext": {"awsSdkVersion": "aws-sdk-unknown-unknown", "clientId": "other"},
        "request": {"userAttributes": {"sub": sub, "name": "Annan Pool", "cognito:user_status": "CONFIRMED"}},
        "response": {},
    }
    assert client.lambda_.invoke("link_customer_on_sign_up", event).payload == event
    assert staff.get("/customers?q=annan").json["items"] == []
    assert_problem(user_api(client, pool_key, sub).get("/me"), 403)


@pytest.mark.dynamodb_local
def test_concurrent_invocations_of_the_trigger_make_one_customer(client, pool_key):
    import threading

    staff = staff_api(client, pool_key)
    sub = str(uuid.uuid4())
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def invoke() -> None:
        barrier.wait()
        event = {
            "region": REGION,
            "userPoolId": POOL_ID,
            "triggerSource": "PostConfirmation_ConfirmSignUp",
            "request": {"userAttributes": {"sub": sub, "name": "Samtidig Kund"}},
        }
        outcomes.append(wiring.identity_service().on_sign_up(event).outcome)

    threads = [threading.Thread(target=invoke) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_linked"] * 3 + ["created"]
    assert len(staff.get("/customers?q=samtidig").json["items"]) == 1
