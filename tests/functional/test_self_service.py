"""Self-service: a customer reaches their own data through /me, and nobody else's."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.functional.conftest import Api, assert_problem


@pytest.fixture
def catalogue(api):
    for body in (
        {
            "sku": "SKU-COFFEE-500",
            "names": {"en": "Coffee 500 g", "sv": "Kaffe 500 g"},
            "price": "6.45",
            "currency": "EUR",
        },
        {"sku": "SKU-MUG", "names": {"en": "Mug"}, "price": "2.20", "currency": "EUR"},
        {"sku": "SKU-OLD", "names": {"en": "Retired"}, "price": "1.00", "currency": "EUR", "active": False},
        {"sku": "SKU-SEK", "names": {"en": "Swedish thing"}, "price": "10.00", "currency": "SEK"},
    ):
        assert api.post("/products", body).status == 201


@pytest.fixture
def alice(api) -> tuple[dict, Api]:
    c = api.create_customer(name="Åsa Öberg", preferred_name="Åsa", locale="sv", email="asa@example.com")
    return c, api.as_role("customer", c["id"])


@pytest.fixture
def bob(api) -> tuple[dict, Api]:
    c = api.create_customer(name="Björn Lindqvist", locale="sv", email="bjorn@example.com")
    return c, api.as_role("customer", c["id"])


def test_a_customer_reads_their_own_profile_with_loyalty(alice):
    customer, me = alice
    reply = me.get("/me")
    assert reply.status == 200
    assert reply.json["id"] == customer["id"] and reply.json["loyalty"]["tier"] == "bronze"
    assert reply.headers["etag"] == '"v1"'


def test_a_customer_changes_their_details_but_nothing_else(alice):
    _, me = alice
    reply = me.patch(
        "/me",
        {"preferred_name": "Åsa-Lena", "locale": "sv-SE", "marketing_consent": True},
        headers={"If-Match": '"v1"'},
    )
    assert reply.status == 200 and reply.json["preferred_name"] == "Åsa-Lena"
    for field, value in (
        ("tags", ["vip"]),
        ("attributes", {"a": "b"}),
        ("loyalty", {}),
        ("role", "staff"),
        ("id", "cus_other"),
        ("version", 9),
    ):
        assert_problem(me.patch("/me", {field: value}), 400, field)
    assert_problem(me.patch("/me", {"locale": "fi"}, headers={"If-Match": '"v1"'}), 412)


def test_asking_for_an_email_someone_else_has_is_answered_like_a_free_one(alice, bob, frozen_clock):
    _, me = alice
    taken = me.patch("/me", {"email": "BJORN@example.com"})
    frozen_clock.advance(timedelta(minutes=1))  # one request a minute (see test_email_change.py)
    free = me.patch("/me", {"email": "fri@example.com"})
    assert taken.status == free.status == 202
    unlike = {"pending_email": None, "pending_email_expires_at": None}
    assert taken.json | unlike == free.json | unlike
    assert me.get("/me").json["email"] == "asa@example.com"  # applied only by the mailed link


def test_an_order_is_priced_from_the_catalogue_and_recorded_as_a_purchase(alice, catalogue):
    _, me = alice
    reply = me.post(
        "/me/orders",
        {
            "channel": "mobile",
            # 2.0 is an integer too, as JSON Schema counts (and generated clients send) them.
            "items": [{"sku": "SKU-COFFEE-500", "quantity": 2.0}, {"sku": "SKU-MUG", "quantity": 1}],
        },
    )
    assert reply.status == 201, reply.json
    purchase = reply.json
    assert (purchase["type"], purchase["channel"], purchase["currency"], purchase["amount"]) == (
        "purchase",
        "mobile",
        "EUR",
        "15.10",
    )
    assert [i["name"] for i in purchase["items"]] == ["Kaffe 500 g", "Mug"]
    assert me.get(reply.headers["location"]).json == purchase
    assert [i["id"] for i in me.get("/me/interactions").json["items"]] == [purchase["id"]]


def test_an_order_cannot_set_prices_or_buy_what_is_not_sold(alice, catalogue):
    _, me = alice
    priced = {"channel": "web", "items": [{"sku": "SKU-MUG", "quantity": 1, "unit_price": "0.01"}]}
    assert_problem(me.post("/me/orders", priced), 400, "items.0.unit_price")
    unknown = {
        "channel": "web",
        "items": [{"sku": "SKU-NOPE", "quantity": 1}, {"sku": "SKU-OLD", "quantity": 1}],
    }
    assert_problem(me.post("/me/orders", unknown), 422, "items.0.sku", "items.1.sku")
    mixed = {
        "channel": "web",
        "items": [{"sku": "SKU-MUG", "quantity": 1}, {"sku": "SKU-SEK", "quantity": 1}],
    }
    assert_problem(me.post("/me/orders", mixed), 422, "items")
    assert_problem(
        me.post("/me/orders", {"channel": "store", "items": [{"sku": "SKU-MUG", "quantity": 1}]}),
        400,
        "channel",
    )
    assert me.get("/me/interactions").json["items"] == []


def test_a_complaint_is_filed_with_medium_severity_by_default(alice):
    _, me = alice
    reply = me.post("/me/complaints", {"subject": "Trasig mugg", "description": "Muggen kom sönder."})
    assert reply.status == 201, reply.json
    assert (reply.json["type"], reply.json["severity"], reply.json["note"]) == (
        "complaint",
        "medium",
        "Muggen kom sönder.",
    )
    assert_problem(me.post("/me/complaints", {"subject": "x"}), 400, "description")


def test_one_customer_gets_404_for_anothers_resources(api, alice, bob):
    from tests.integration.streams import interaction_records

    bob_customer, bob_me = bob
    _, alice_me = alice
    complaint = bob_me.post(
        "/me/complaints", {"subject": "Sen leverans", "description": "Paketet är sent."}
    ).json
    api._client.lambda_.invoke("open_cases", {"Records": interaction_records()})
    [case] = bob_me.get("/me/cases").json["items"]
    assert bob_me.get(f"/me/cases/{case['id']}").status == 200
    assert "history" not in case and "assignee" not in case
    assert_problem(alice_me.get(f"/me/cases/{case['id']}"), 404)
    assert_problem(alice_me.get(f"/me/interactions/{complaint['id']}"), 404)
    assert alice_me.get("/me/cases").json["items"] == []
    assert bob_customer


def test_staff_tokens_cannot_use_self_service_routes(api):
    assert_problem(api.get("/me"), 403)
