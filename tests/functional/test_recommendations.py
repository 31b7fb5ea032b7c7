"""Related products and recommendations over HTTP: purchases go through the API, the
interactions stream through the local event pump (the real consumers), answers through the
served OpenAPI document's shapes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.functional.conftest import Api, assert_problem

RECOMMENDATION_KEYS = {"sku", "names", "price", "currency", "reason", "because_of", "due_at", "score"}
RELATED_KEYS = {"sku", "names", "price", "currency", "co_purchases", "confidence"}


@pytest.fixture
def catalogue(api: Api, frozen_clock) -> None:
    for sku, price in (("SKU-TEA", "7.50"), ("SKU-MUG", "11.50"), ("SKU-HONEY", "6.00"), ("SKU-OLD", "1.00")):
        reply = api.post(
            "/products", {"sku": sku, "names": {"en": sku[4:].title()}, "price": price, "currency": "EUR"}
        )
        assert reply.status == 201, reply.json
    assert api.patch("/products/SKU-OLD", {"active": False}).status == 200


def buy(api: Api, customer_id: str, *skus: str, days_ago: float = 1) -> None:
    at = api_now() - timedelta(days=days_ago)
    items = [{"sku": s, "name": s.title(), "quantity": 1, "unit_price": "5.00"} for s in skus]
    body = {
        "type": "purchase",
        "channel": "store",
        "currency": "EUR",
        "items": items,
        "occurred_at": at.isoformat(),
    }
    reply = api.post(f"/customers/{customer_id}/interactions", body)
    assert reply.status == 201, reply.json


def api_now():
    from chalicelib import wiring

    return wiring.clock.now()


def shoppers(api: Api, pump, *baskets: tuple[str, ...]) -> list[str]:
    """One customer per basket, each buying it; the stream consumers then count them."""
    ids = []
    for n, basket in enumerate(baskets):
        ids.append(api.create_customer(name=f"Shopper {n}")["id"])
        buy(api, ids[-1], *basket)
    pump.drain()
    return ids


def test_related_products_are_the_ones_bought_together_by_at_least_two_customers(api, pump, catalogue):
    shoppers(api, pump, ("SKU-TEA", "SKU-MUG"), ("SKU-TEA", "SKU-MUG", "SKU-HONEY"), ("SKU-TEA",))
    reply = api.get("/products/SKU-TEA/related")
    assert reply.status == 200, reply.json
    assert reply.json["next_cursor"] is None
    [mug] = reply.json["items"]  # HONEY was bought with TEA by one customer only
    assert set(mug) == RELATED_KEYS
    assert mug | {"names": None} == {
        "sku": "SKU-MUG",
        "names": None,
        "price": "11.50",
        "currency": "EUR",
        "co_purchases": 2,
        "confidence": pytest.approx(2 / 3, abs=1e-4),
    }


def test_related_products_are_paged_with_next_cursor(api, pump, catalogue):
    shoppers(api, pump, *[("SKU-TEA", "SKU-MUG", "SKU-HONEY")] * 2, ("SKU-TEA", "SKU-MUG"))
    first = api.get("/products/SKU-TEA/related?limit=1")
    assert [i["sku"] for i in first.json["items"]] == ["SKU-MUG"]
    assert first.json["next_cursor"]
    assert [i["sku"] for i in api.walk("/products/SKU-TEA/related", 1)] == ["SKU-MUG", "SKU-HONEY"]


def test_customers_never_see_inactive_related_products_and_staff_do(api, pump, catalogue):
    shoppers(api, pump, ("SKU-TEA", "SKU-OLD"), ("SKU-TEA", "SKU-OLD"))
    shopper = api.as_role("customer", "cus_anyone")
    assert shopper.get("/products/SKU-TEA/related").json["items"] == []
    assert [i["sku"] for i in api.get("/products/SKU-TEA/related").json["items"]] == ["SKU-OLD"]
    assert_problem(shopper.get("/products/SKU-OLD/related"), 404)
    assert api.get("/products/SKU-OLD/related").status == 200


def test_an_unknown_product_or_customer_is_404_and_a_bad_limit_400(api, catalogue):
    customer = api.create_customer(name="Åsa")
    assert_problem(api.get("/products/SKU-NOPE/related"), 404)
    assert_problem(api.get("/customers/cus_NOBODY/recommendations"), 404)
    for path in ("/products/SKU-TEA/related", f"/customers/{customer['id']}/recommendations"):
        for limit in ("0", "101", "x"):
            assert_problem(api.get(f"{path}?limit={limit}"), 400, "limit")
    me = api.as_role("customer", customer["id"])
    assert_problem(me.get("/me/recommendations?limit=0"), 400, "limit")


def test_a_customer_with_no_purchases_gets_the_most_bought_active_products(api, pump, catalogue):
    shoppers(api, pump, ("SKU-TEA", "SKU-MUG", "SKU-OLD"), ("SKU-TEA", "SKU-OLD"), ("SKU-TEA", "SKU-OLD"))
    new = api.create_customer(name="New")
    reply = api.get(f"/customers/{new['id']}/recommendations")
    assert reply.status == 200, reply.json
    items = reply.json["items"]
    assert all(set(i) == RECOMMENDATION_KEYS for i in items)
    assert [(i["sku"], i["reason"], i["because_of"], i["due_at"]) for i in items] == [
        ("SKU-TEA", "popular", None, None),
        ("SKU-MUG", "popular", None, None),
    ]
    assert [i["score"] for i in items] == [1.0, pytest.approx(1 / 3, abs=1e-4)]


def test_a_habit_becomes_a_repurchase_due_once_the_clock_reaches_its_window(
    api, pump, catalogue, frozen_clock
):
    asa = api.create_customer(name="Åsa")["id"]
    buy(api, asa, "SKU-TEA", days_ago=21)
    buy(api, asa, "SKU-TEA", days_ago=1)  # every 20 days: expected again in 19
    pump.drain()
    path = f"/customers/{asa}/recommendations"
    assert api.get(path).json == {"items": [], "next_cursor": None}

    frozen_clock.advance(timedelta(days=13))  # expected in 6 days
    [due] = api.get(path).json["items"]
    assert set(due) == RECOMMENDATION_KEYS
    assert (due["sku"], due["reason"], due["because_of"]) == ("SKU-TEA", "repurchase_due", None)
    assert due["due_at"].startswith((api_now() + timedelta(days=6)).date().isoformat())
    assert (due["names"], due["price"], due["currency"]) == ({"en": "Tea"}, "7.50", "EUR")

    frozen_clock.advance(timedelta(days=6 + 41))  # overdue by 41 days: more than twice 20
    assert api.get(path).json["items"] == []


def test_products_two_other_customers_bought_together_are_offered_with_their_source(api, pump, catalogue):
    shoppers(api, pump, ("SKU-TEA", "SKU-HONEY"), ("SKU-TEA", "SKU-HONEY", "SKU-MUG"))
    asa = api.create_customer(name="Åsa")["id"]
    buy(api, asa, "SKU-TEA")
    pump.drain()
    [honey] = api.get(f"/customers/{asa}/recommendations").json["items"]
    assert (honey["sku"], honey["reason"], honey["because_of"], honey["due_at"]) == (
        "SKU-HONEY",
        "bought_together",
        "SKU-TEA",
        None,
    )
    assert honey["score"] == pytest.approx(2 / 3, abs=1e-4)  # 2 of TEA's 3 buyers


def test_me_recommendations_are_the_callers_own_and_paged(api, pump, catalogue):
    shoppers(api, pump, ("SKU-TEA", "SKU-MUG", "SKU-HONEY"), ("SKU-TEA", "SKU-MUG"), ("SKU-TEA",))
    asa = api.create_customer(name="Åsa")["id"]
    me = api.as_role("customer", asa)
    first = me.get("/me/recommendations?limit=2")
    assert first.status == 200, first.json
    assert [i["sku"] for i in first.json["items"]] == ["SKU-TEA", "SKU-MUG"]
    assert first.json["next_cursor"]
    rest = me.get(f"/me/recommendations?limit=2&cursor={first.json['next_cursor']}")
    assert ([i["sku"] for i in rest.json["items"]], rest.json["next_cursor"]) == (["SKU-HONEY"], None)
    assert me.get("/me/recommendations").json == api.get(f"/customers/{asa}/recommendations").json
    other = api.as_role("customer", api.create_customer(name="Bo")["id"])
    assert_problem(other.get(f"/me/recommendations?cursor={first.json['next_cursor']}"), 400, "cursor")
    assert_problem(me.get(f"/customers/{asa}/recommendations"), 403)
