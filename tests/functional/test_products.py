"""The product catalogue through the HTTP API."""

from __future__ import annotations

import json

import pytest

from tests.functional.conftest import assert_problem

MUG = {
    "sku": "SKU-MUG-CERAMIC",
    "names": {"en": "Ceramic mug 350 ml", "sv": "Keramikmugg 350 ml", "fi": "Keraaminen muki 350 ml"},
    "price": "11.50",
    "currency": "EUR",
}


def create(api, **fields) -> dict:
    reply = api.post("/products", {**MUG, **fields})
    assert reply.status == 201, reply.json
    return reply.json


def audit_entries(sku: str) -> list[dict]:
    from chalicelib.store.models import AuditModel

    return [
        {
            "entity": item.entity,
            "entity_id": item.entity_id,
            "action": item.action,
            "actor": (item.actor_subject, item.actor_role, item.route),
            "changes": {c["field"]: (c["before"], c["after"]) for c in json.loads(item.changes)},
        }
        for item in AuditModel.query(f"PRODUCT#{sku}", AuditModel.sk.startswith("AUDIT#"))
    ]


# -- create and read ---------------------------------------------------------------------


def test_creating_a_product_returns_201_with_location_etag_and_the_product(api, frozen_clock):
    reply = api.post("/products", MUG)
    assert reply.status == 201, reply.json
    assert reply.headers["location"] == "/products/SKU-MUG-CERAMIC"
    assert reply.headers["etag"] == '"v1"'
    assert reply.json == {
        "sku": "SKU-MUG-CERAMIC",
        "names": MUG["names"],
        "price": "11.50",
        "currency": "EUR",
        "active": True,
        "created_at": "2026-11-26T12:00:00.000Z",
        "updated_at": "2026-11-26T12:00:00.000Z",
        "version": 1,
    }


def test_a_created_product_reads_back_the_same_with_its_etag(api):
    created = create(api)
    reply = api.get("/products/SKU-MUG-CERAMIC")
    assert reply.status == 200
    assert reply.json == created
    assert reply.headers["etag"] == '"v1"'


def test_a_product_can_be_created_inactive(api):
    assert create(api, active=False)["active"] is False


def test_a_duplicate_sku_is_409_naming_sku(api):
    create(api)
    reply = api.post("/products", {**MUG, "price": "1.00"})
    assert_problem(reply, 409, "sku")
    assert api.get("/products/SKU-MUG-CERAMIC").json["price"] == "11.50"
    assert len(audit_entries("SKU-MUG-CERAMIC")) == 1


@pytest.mark.parametrize("path", ["/products/SKU-NOPE", "/products/" + "x" * 300, "/products/-bad"])
def test_an_unknown_product_is_404(api, path):
    assert_problem(api.get(path), 404)
    assert_problem(api.patch(path, {"active": False}), 404)


def test_a_sku_with_slash_and_colon_is_reached_through_its_location(api):
    reply = api.post("/products", {**MUG, "sku": "ACME/mug:350"})
    assert reply.headers["location"] == "/products/ACME%2Fmug%3A350"
    assert api.get(reply.headers["location"]).json["sku"] == "ACME/mug:350"
    patched = api.patch(reply.headers["location"], {"active": False})
    assert (patched.status, patched.json["active"]) == (200, False)


def test_locales_are_canonical_and_names_keep_their_script(api):
    body = create(api, names={"en": "Mug", "fi-fi": "Muki", "SL": "Skodelica č", "zh-hant-tw": "馬克杯"})
    assert body["names"] == {"en": "Mug", "fi-FI": "Muki", "sl": "Skodelica č", "zh-Hant-TW": "馬克杯"}


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sku", ""),
        ("sku", "x" * 65),
        ("sku", "-starts-with-a-dash"),
        ("sku", "has space"),
        ("names", {}),
        ("names", {"sv": "Mugg"}),
        ("names", {"en": ""}),
        ("names", {"en": "Mug", "not a locale": "x"}),
        ("names", {"en": "Mug", "EN": "Mug"}),
        ("names", {"en": "x" * 201}),
        ("names", "Mug"),
        ("price", "-1.00"),
        ("price", "1.005"),
        ("price", "12,90"),
        ("price", True),
        ("currency", "eur"),
        ("currency", "XXX"),
        ("active", "yes"),
    ],
)
def test_an_invalid_field_is_400_naming_it(api, field, value):
    reply = api.post("/products", {**MUG, field: value})
    problem = assert_problem(reply, 400)
    assert {e["field"].split(".")[0] for e in problem["errors"]} == {field}, problem


def test_names_must_include_english(api):
    problem = assert_problem(api.post("/products", {**MUG, "names": {"sv": "Mugg"}}), 400, "names")
    assert '"en"' in problem["errors"][0]["message"]


@pytest.mark.parametrize("field", ["version", "created_at", "amount"])
def test_server_fields_and_unknown_fields_are_rejected(api, field):
    assert_problem(api.post("/products", {**MUG, field: "1"}), 400, field)


@pytest.mark.parametrize(
    ("price", "currency", "shown"),
    [
        ("12.9", "EUR", "12.90"),
        ("12.900", "EUR", "12.90"),
        ("0", "EUR", "0.00"),
        ("100", "JPY", "100"),
        ("1.005", "BHD", "1.005"),
    ],
)
def test_prices_are_exact_and_shown_with_the_currencys_minor_digits(api, price, currency, shown):
    assert create(api, price=price, currency=currency)["price"] == shown


def test_a_json_number_price_is_read_as_an_exact_decimal(api):
    reply = api.post("/products", raw=json.dumps(MUG).replace('"11.50"', "12.9"))
    assert reply.status == 201, reply.json
    assert reply.json["price"] == "12.90"


@pytest.mark.parametrize(("price", "currency"), [("1.005", "EUR"), ("100.5", "JPY")])
def test_a_price_finer_than_the_currency_is_400_naming_price(api, price, currency):
    problem = assert_problem(
        api.post("/products", {**MUG, "price": price, "currency": currency}), 400, "price"
    )
    assert currency in problem["errors"][0]["message"]


# -- changes -----------------------------------------------------------------------------


def test_patch_changes_only_the_fields_given(api, frozen_clock):
    from datetime import timedelta

    create(api)
    frozen_clock.advance(timedelta(minutes=5))
    reply = api.patch("/products/SKU-MUG-CERAMIC", {"price": 12.9}, headers={"If-Match": '"v1"'})
    assert reply.status == 200, reply.json
    assert reply.headers["etag"] == '"v2"'
    body = reply.json
    assert (body["price"], body["currency"], body["names"], body["active"]) == (
        "12.90",
        "EUR",
        MUG["names"],
        True,
    )
    assert body["version"] == 2
    assert body["created_at"] == "2026-11-26T12:00:00.000Z"
    assert body["updated_at"] == "2026-11-26T12:05:00.000Z"
    assert api.get("/products/SKU-MUG-CERAMIC").json == body


def test_patching_names_replaces_the_whole_map(api):
    create(api)
    body = api.patch("/products/SKU-MUG-CERAMIC", {"names": {"en": "Mug", "tl": "Tasa"}}).json
    assert body["names"] == {"en": "Mug", "tl": "Tasa"}


def test_patching_a_price_checks_it_against_the_stored_currency(api):
    create(api, currency="JPY", price="1500")
    assert_problem(api.patch("/products/SKU-MUG-CERAMIC", {"price": "1500.5"}), 400, "price")
    assert api.patch("/products/SKU-MUG-CERAMIC", {"price": "1600"}).json["price"] == "1600"


def test_a_new_currency_the_stored_price_does_not_fit_is_400_naming_currency(api):
    create(api, price="12.90")
    assert_problem(api.patch("/products/SKU-MUG-CERAMIC", {"currency": "JPY"}), 400, "currency")
    both = api.patch("/products/SKU-MUG-CERAMIC", {"currency": "JPY", "price": "1500"})
    assert (both.json["price"], both.json["currency"]) == ("1500", "JPY")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"names": None}, "names"),
        ({"price": None}, "price"),
        ({"active": None}, "active"),
        ({"price": "-1"}, "price"),
        ({"names": {"sv": "Mugg"}}, "names"),
        ({"sku": "OTHER"}, "sku"),
        ({"version": 3}, "version"),
    ],
)
def test_an_invalid_patch_is_400_naming_the_field(api, body, field):
    create(api)
    assert_problem(api.patch("/products/SKU-MUG-CERAMIC", body), 400, field)


def test_a_stale_if_match_is_rejected_with_412_and_changes_nothing(api):
    create(api)
    api.patch("/products/SKU-MUG-CERAMIC", {"active": False})
    reply = api.patch("/products/SKU-MUG-CERAMIC", {"price": "1.00"}, headers={"If-Match": '"v1"'})
    assert_problem(reply, 412)
    current = api.get("/products/SKU-MUG-CERAMIC").json
    assert (current["price"], current["version"]) == ("11.50", 2)
    assert [e["action"] for e in audit_entries("SKU-MUG-CERAMIC")] == ["create", "update"]


def test_a_malformed_if_match_is_400(api):
    create(api)
    assert_problem(api.patch("/products/SKU-MUG-CERAMIC", {"active": False}, headers={"If-Match": "v1"}), 400)


def test_a_patch_that_changes_nothing_writes_nothing(api):
    create(api)
    reply = api.patch("/products/SKU-MUG-CERAMIC", {"price": "11.5", "active": True})
    assert reply.status == 200
    assert reply.json["version"] == 1
    assert len(audit_entries("SKU-MUG-CERAMIC")) == 1


# -- customers ---------------------------------------------------------------------------


def test_customers_see_only_active_products(api):
    create(api, sku="SKU-A")
    create(api, sku="SKU-B", active=False)
    create(api, sku="SKU-C")
    customer = api.as_role("customer", "cus_x")
    assert [p["sku"] for p in customer.get("/products").json["items"]] == ["SKU-A", "SKU-C"]
    assert customer.get("/products/SKU-A").status == 200
    assert_problem(customer.get("/products/SKU-B"), 404)
    assert_problem(customer.get("/products?active=false"), 400, "active")
    assert [p["sku"] for p in customer.get("/products?active=true").json["items"]] == ["SKU-A", "SKU-C"]


def test_a_deactivated_product_disappears_for_customers_at_once(api):
    create(api)
    customer = api.as_role("customer", "cus_x")
    assert customer.get("/products/SKU-MUG-CERAMIC").status == 200
    api.patch("/products/SKU-MUG-CERAMIC", {"active": False})
    assert_problem(customer.get("/products/SKU-MUG-CERAMIC"), 404)
    assert customer.get("/products").json == {"items": [], "next_cursor": None}


def test_customers_cannot_create_or_change_products(api):
    create(api)
    customer = api.as_role("customer", "cus_x")
    assert_problem(customer.post("/products", {**MUG, "sku": "SKU-OTHER"}), 403)
    assert_problem(customer.patch("/products/SKU-MUG-CERAMIC", {"price": "0.00"}), 403)
    assert api.get("/products/SKU-MUG-CERAMIC").json["price"] == "11.50"
    assert_problem(api.get("/products/SKU-OTHER"), 404)


def test_staff_see_every_product_and_may_filter_on_active(api):
    create(api, sku="SKU-A")
    create(api, sku="SKU-B", active=False)

    def skus(path):
        return [p["sku"] for p in api.get(path).json["items"]]

    assert skus("/products") == ["SKU-A", "SKU-B"]
    assert skus("/products?active=true") == ["SKU-A"]
    assert skus("/products?active=false") == ["SKU-B"]
    assert_problem(api.get("/products?active=maybe"), 400, "active")


# -- pages -------------------------------------------------------------------------------


def test_paging_walks_every_product_exactly_once_in_sku_order(api):
    skus = [f"SKU-{n:02d}" for n in range(11)]
    for sku in reversed(skus):
        create(api, sku=sku, active=sku not in ("SKU-03", "SKU-04", "SKU-08"))
    assert [p["sku"] for p in api.walk("/products", limit=3)] == skus
    active = [s for s in skus if s not in ("SKU-03", "SKU-04", "SKU-08")]
    assert [p["sku"] for p in api.walk("/products?active=true", limit=2)] == active
    customer = api.as_role("customer", "cus_x")
    assert [p["sku"] for p in customer.walk("/products", limit=4)] == active


def test_a_cursor_of_another_list_is_400(api):
    for sku in ("SKU-A", "SKU-B", "SKU-C"):
        create(api, sku=sku)
    cursor = api.get("/products?limit=1").json["next_cursor"]
    assert cursor
    assert_problem(api.get(f"/products?limit=1&active=true&cursor={cursor}"), 400, "cursor")
    assert_problem(api.get(f"/products?limit=1&cursor={cursor[:-2]}xx"), 400, "cursor")


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "colour=red", "cursor=é.é"])
def test_bad_page_parameters_are_400(api, query):
    assert_problem(api.get(f"/products?{query}"), 400)


# -- audit -------------------------------------------------------------------------------


def test_creating_a_product_writes_one_audit_entry_with_its_fields(api):
    create(api)
    assert audit_entries("SKU-MUG-CERAMIC") == [
        {
            "entity": "product",
            "entity_id": "SKU-MUG-CERAMIC",
            "action": "create",
            "actor": ("staff-1", "staff", "POST /products"),
            "changes": {
                "names": (None, MUG["names"]),
                "price": (None, "11.50"),
                "currency": (None, "EUR"),
                "active": (None, True),
            },
        }
    ]


def test_a_patch_writes_an_audit_entry_with_only_the_changed_fields(api):
    create(api)
    api.patch("/products/SKU-MUG-CERAMIC", {"price": "12.9", "active": True, "currency": "EUR"})
    entries = audit_entries("SKU-MUG-CERAMIC")
    assert [e["action"] for e in entries] == ["create", "update"]
    update = entries[1]
    assert update["actor"] == ("staff-1", "staff", "PATCH /products/{sku}")
    assert update["changes"] == {"price": ("11.50", "12.90")}


def test_a_write_that_loses_a_race_is_412_and_leaves_no_audit_entry(api, monkeypatch):
    """The If-Match check passes on a stale read; the version condition of the transaction then
    fails, and the audit entry written in that transaction goes with it."""
    from chalicelib.store.products import ProductRepository

    create(api)
    stale = ProductRepository("eu-north-1").get("SKU-MUG-CERAMIC")
    api.patch("/products/SKU-MUG-CERAMIC", {"active": False})
    monkeypatch.setattr(ProductRepository, "get", lambda self, sku, consistent=False: stale)
    reply = api.patch("/products/SKU-MUG-CERAMIC", {"price": "1.00"}, headers={"If-Match": '"v1"'})
    assert_problem(reply, 412)
    monkeypatch.undo()
    current = api.get("/products/SKU-MUG-CERAMIC").json
    assert (current["price"], current["active"], current["version"]) == ("11.50", False, 2)
    assert [e["changes"] for e in audit_entries("SKU-MUG-CERAMIC")][1:] == [{"active": (True, False)}]


def test_a_rejected_create_writes_no_audit_entry(api):
    assert_problem(api.post("/products", {**MUG, "price": "1.005"}), 400, "price")
    assert audit_entries("SKU-MUG-CERAMIC") == []


# -- for orders --------------------------------------------------------------------------


def test_get_many_returns_the_known_products_by_sku_with_their_active_flag(api):
    from chalicelib import wiring

    create(api, sku="SKU-A")
    create(api, sku="SKU-B", active=False, price="3.9")
    found = wiring.product_service().get_many(["SKU-A", "SKU-B", "SKU-NOPE", "SKU-A", "bad sku"])
    assert set(found) == {"SKU-A", "SKU-B"}
    assert (found["SKU-B"].active, str(found["SKU-B"].price), found["SKU-B"].currency) == (
        False,
        "3.90",
        "EUR",
    )


def test_the_demo_catalogue_is_accepted_as_it_is(api):
    from chalicelib.local.seed_data import demo_products

    for body in demo_products():
        reply = api.post("/products", body)
        assert reply.status == 201, reply.json
        assert reply.json["price"] == body["price"]
    customer = api.as_role("customer", "cus_x")
    assert [p["sku"] for p in customer.walk("/products", limit=5)] == [b["sku"] for b in demo_products()]
