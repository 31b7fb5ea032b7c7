from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib.domain.interactions import CHANNELS, TYPES
from tests.functional.conftest import assert_problem, bulk_interactions


@pytest.fixture
def customer(api):
    return api.create_customer(name="Päivi Virtanen", locale="fi")


def purchase(**overrides):
    return {
        "type": "purchase",
        "channel": "store",
        "currency": "EUR",
        "items": [
            {"sku": "SKU-COFFEE-500", "name": "Kahvi 500 g", "quantity": 2, "unit_price": "1.10"},
            {"sku": "SKU-MUG", "name": "Muki", "quantity": 1, "unit_price": 2.20},
        ],
        **overrides,
    }


def _post(api, customer, body):
    return api.post(f"/customers/{customer['id']}/interactions", body)


def test_a_purchase_is_recorded_with_exact_money(api, customer):
    reply = _post(api, customer, purchase(note="Osti kahvia"))
    assert reply.status == 201, reply.json
    body = reply.json
    assert reply.headers["location"] == f"/customers/{customer['id']}/interactions/{body['id']}"
    assert body["amount"] == "4.40"
    assert [i["unit_price"] for i in body["items"]] == ["1.10", "2.20"]
    assert (
        body["customer_id"] == customer["id"] and body["type"] == "purchase" and body["note"] == "Osti kahvia"
    )
    assert api.get(reply.headers["location"]).json == body


def test_prices_as_json_numbers_are_parsed_without_binary_floating_point(api, customer):
    items = [
        {"sku": "A", "name": "a", "quantity": 1, "unit_price": 1.10},
        {"sku": "B", "name": "b", "quantity": 1, "unit_price": 2.20},
    ]
    assert _post(api, customer, purchase(items=items)).json["amount"] == "3.30"
    items = [{"sku": "C", "name": "c", "quantity": 3, "unit_price": 0.1}]
    assert _post(api, customer, purchase(items=items)).json["amount"] == "0.30"


@pytest.mark.parametrize(
    ("currency", "price", "amount"),
    [("JPY", "500", "500"), ("BHD", "1.005", "1.005"), ("SEK", 99, "99.00"), ("EUR", "1.100", "1.10")],
)
def test_money_uses_the_currencys_minor_units(api, customer, currency, price, amount):
    items = [{"sku": "A", "name": "a", "quantity": 1, "unit_price": price}]
    reply = _post(api, customer, purchase(currency=currency, items=items))
    assert reply.status == 201, reply.json
    assert reply.json["amount"] == amount


@pytest.mark.parametrize(
    ("currency", "price", "field"),
    [
        ("EUR", "1.005", "items.0.unit_price"),
        ("JPY", "10.5", "items.0.unit_price"),
        ("EUR", "-1.00", "items.0.unit_price"),
        ("EUR", "1e3", "items.0.unit_price"),
        ("EUR", "abc", "items.0.unit_price"),
        ("EUR", True, "items.0.unit_price"),
        ("XXX", "1.00", "currency"),
        ("eur", "1.00", "currency"),
    ],
)
def test_bad_prices_and_currencies_are_rejected(api, customer, currency, price, field):
    items = [{"sku": "A", "name": "a", "quantity": 1, "unit_price": price}]
    assert_problem(_post(api, customer, purchase(currency=currency, items=items)), 400, field)


def test_every_bad_item_field_is_named(api, customer):
    items = [
        {"sku": "", "name": "", "quantity": 0, "unit_price": "1.00", "discount": 1},
        {"sku": "B", "name": "b", "quantity": 1.5, "unit_price": "1.00"},
    ]
    assert_problem(
        _post(api, customer, purchase(items=items)),
        400,
        "items.0.sku",
        "items.0.name",
        "items.0.quantity",
        "items.0.discount",
        "items.1.quantity",
    )
    assert_problem(_post(api, customer, purchase(items=[])), 400, "items")
    assert_problem(_post(api, customer, {"type": "purchase", "channel": "web"}), 400, "currency", "items")


def test_a_quantity_written_with_a_zero_fraction_is_that_integer_as_in_json_schema(api, customer):
    # JSON Schema's integer is any number without a fractional part: generated clients send 51.0.
    line = '{"sku": "A", "name": "a", "quantity": %s, "unit_price": "1.10"}'
    raw = '{"type": "purchase", "channel": "web", "currency": "EUR", "items": [%s, %s]}'
    reply = api.post(f"/customers/{customer['id']}/interactions", raw=raw % (line % "51.0", line % "2e0"))
    assert reply.status == 201, reply.json
    assert [item["quantity"] for item in reply.json["items"]] == [51, 2]
    assert reply.json["amount"] == "58.30"
    bad = ", ".join(line % value for value in ("51.5", "true", '"51"', "1e999999999"))
    reply = api.post(f"/customers/{customer['id']}/interactions", raw=raw.replace("%s, %s", bad))
    assert_problem(reply, 400, "items.0.quantity", "items.1.quantity", "items.2.quantity", "items.3.quantity")


@pytest.mark.parametrize("kind", TYPES)
def test_every_type_can_be_recorded(api, customer, kind):
    body = {"type": kind, "channel": "email"}
    if kind in ("purchase", "return"):
        body = purchase()
    if kind == "return":
        bought = _post(api, customer, purchase()).json
        body = {**purchase(), "type": "return", "purchase_id": bought["id"]}
    if kind == "complaint":
        body |= {"severity": "high", "subject": "Rikkinäinen muki"}
    if kind == "message":
        body |= {"direction": "outbound", "subject": "Tilauksesi", "text": "Kiitos tilauksestasi!"}
    reply = _post(api, customer, body)
    assert reply.status == 201, reply.json
    assert reply.json["type"] == kind
    assert reply.json["direction"] == ("outbound" if kind == "message" else "inbound")


@pytest.mark.parametrize("channel", CHANNELS)
def test_every_channel_can_be_used(api, customer, channel):
    assert _post(api, customer, {"type": "inquiry", "channel": channel}).json["channel"] == channel


def test_a_message_needs_subject_and_text_and_a_known_direction(api, customer):
    assert_problem(_post(api, customer, {"type": "message", "channel": "email"}), 400, "subject", "text")
    bad = {"type": "message", "channel": "email", "subject": "s", "text": "t", "direction": "sideways"}
    assert_problem(_post(api, customer, bad), 400, "direction")


def test_unknown_type_and_channel_are_400(api, customer):
    assert_problem(_post(api, customer, {"type": "hug", "channel": "web"}), 400, "type")
    assert_problem(_post(api, customer, {"type": "visit", "channel": "pigeon"}), 400, "channel")
    assert_problem(_post(api, customer, {"channel": "web"}), 400, "type")


def test_a_complaint_needs_severity_and_subject(api, customer):
    assert_problem(
        _post(api, customer, {"type": "complaint", "channel": "phone"}), 400, "severity", "subject"
    )
    assert_problem(
        _post(
            api,
            customer,
            {"type": "complaint", "channel": "phone", "severity": "apocalyptic", "subject": "x"},
        ),
        400,
        "severity",
    )
    reply = _post(
        api,
        customer,
        {"type": "complaint", "channel": "letter", "severity": "critical", "subject": "Paketti ei tullut"},
    )
    assert (reply.json["severity"], reply.json["subject"]) == ("critical", "Paketti ei tullut")


def test_fields_of_another_type_are_unknown_fields(api, customer):
    assert_problem(
        _post(api, customer, {"type": "visit", "channel": "store", "severity": "low"}), 400, "severity"
    )


def test_occurred_at_needs_an_offset_and_may_be_at_most_5_minutes_ahead(api, customer, frozen_clock):
    now = frozen_clock.now()
    ok = (now + timedelta(minutes=4)).astimezone(timezone(timedelta(hours=2))).isoformat()
    reply = _post(api, customer, {"type": "visit", "channel": "store", "occurred_at": ok})
    assert reply.status == 201 and reply.json["occurred_at"] == "2026-11-26T12:04:00.000Z"
    late = (now + timedelta(minutes=6)).isoformat()
    assert_problem(
        _post(api, customer, {"type": "visit", "channel": "store", "occurred_at": late}), 400, "occurred_at"
    )
    for bad in ("2026-11-01T10:00:00", "2026-11-01", "yesterday", 1700000000, "2026-02-30T10:00:00Z"):
        assert_problem(
            _post(api, customer, {"type": "visit", "channel": "store", "occurred_at": bad}),
            400,
            "occurred_at",
        )


def test_occurred_at_defaults_to_now(api, customer, frozen_clock):
    reply = _post(api, customer, {"type": "visit", "channel": "store"})
    assert reply.json["occurred_at"] == "2026-11-26T12:00:00.000Z"


def test_a_note_over_4000_characters_is_400(api, customer):
    assert_problem(
        _post(api, customer, {"type": "inquiry", "channel": "chat", "note": "x" * 4001}), 400, "note"
    )
    assert _post(api, customer, {"type": "inquiry", "channel": "chat", "note": "ä" * 4000}).status == 201


def test_an_unknown_customer_is_404(api):
    assert_problem(api.post("/customers/cus_nope/interactions", {"type": "visit", "channel": "store"}), 404)
    assert_problem(api.get("/customers/cus_nope/interactions"), 404)
    assert_problem(api.get("/customers/cus_nope/interactions/int_nope"), 404)


def test_an_unknown_interaction_is_404(api, customer):
    assert_problem(api.get(f"/customers/{customer['id']}/interactions/int_nope"), 404)


def test_a_return_reduces_what_can_be_returned_and_more_is_409(api, customer):
    bought = _post(api, customer, purchase()).json
    first = {
        "type": "return",
        "channel": "store",
        "currency": "EUR",
        "purchase_id": bought["id"],
        "items": [{"sku": "SKU-COFFEE-500", "name": "Kahvi 500 g", "quantity": 1, "unit_price": "1.10"}],
    }
    reply = _post(api, customer, first)
    assert (
        reply.status == 201 and reply.json["amount"] == "1.10" and reply.json["purchase_id"] == bought["id"]
    )
    too_many = {**first, "items": [{**first["items"][0], "quantity": 2}]}
    assert_problem(_post(api, customer, too_many), 409, "items.0.quantity")
    assert _post(api, customer, first).status == 201
    assert_problem(_post(api, customer, first), 409, "items.0.quantity")
    never_bought = {
        **first,
        "items": [{"sku": "SKU-OTHER", "name": "x", "quantity": 1, "unit_price": "1.00"}],
    }
    assert_problem(_post(api, customer, never_bought), 422, "items.0.sku")


def test_a_return_never_refunds_more_than_the_purchase_charged_for_the_sku(api, customer):
    bought = _post(api, customer, purchase()).json
    [line] = [i for i in bought["items"] if i["sku"] == "SKU-COFFEE-500"]
    ret = {
        "type": "return",
        "channel": "store",
        "currency": "EUR",
        "purchase_id": bought["id"],
        "items": [{"sku": "SKU-COFFEE-500", "name": "Kahvi 500 g", "quantity": 1, "unit_price": "999999.00"}],
    }

    problem = assert_problem(_post(api, customer, ret), 422, "items.0.unit_price")
    assert line["unit_price"] in str(problem["errors"])
    both = {**ret, "items": [*ret["items"], {**ret["items"][0], "sku": "SKU-NEVER", "unit_price": "1.00"}]}
    assert_problem(_post(api, customer, both), 422, "items.0.unit_price", "items.1.sku")  # named at once
    cheaper = {**ret, "items": [{**ret["items"][0], "unit_price": "0.50"}]}  # e.g. a partial refund
    assert _post(api, customer, cheaper).status == 201
    loyalty = api.get(f"/customers/{customer['id']}/loyalty")
    assert loyalty.status == 200


def test_a_return_must_name_a_purchase_of_the_same_customer(api, customer):
    other = api.create_customer(name="Björn Lindqvist")
    bought = _post(api, other, purchase()).json
    ret = {**purchase(), "type": "return", "purchase_id": bought["id"]}
    assert_problem(_post(api, customer, ret), 422, "purchase_id")
    visit = _post(api, customer, {"type": "visit", "channel": "store"}).json
    assert_problem(_post(api, customer, {**ret, "purchase_id": visit["id"]}), 422, "purchase_id")
    assert_problem(_post(api, customer, {**purchase(), "type": "return"}), 400, "purchase_id")
    own = _post(api, customer, purchase()).json
    assert_problem(
        _post(api, customer, {**ret, "purchase_id": own["id"], "currency": "SEK"}), 422, "currency"
    )


def test_the_timeline_is_newest_first_by_occurrence_and_filters_by_type(api, customer):
    base = datetime(2026, 5, 1, tzinfo=UTC)
    posted = []
    for i, kind in enumerate(["visit", "inquiry", "visit", "feedback", "visit"]):
        at = (base + timedelta(days=(i * 7) % 5)).isoformat()
        posted.append(
            (at, _post(api, customer, {"type": kind, "channel": "web", "occurred_at": at}).json["id"])
        )
    timeline = api.get(f"/customers/{customer['id']}/interactions").json
    assert [i["id"] for i in timeline["items"]] == [i for _, i in sorted(posted, reverse=True)]
    visits = api.get(f"/customers/{customer['id']}/interactions?type=visit").json["items"]
    assert [v["type"] for v in visits] == ["visit"] * 3
    assert [v["occurred_at"] for v in visits] == sorted((v["occurred_at"] for v in visits), reverse=True)
    assert_problem(api.get(f"/customers/{customer['id']}/interactions?type=hug"), 400, "type")


def test_walking_250_interactions_page_by_page_returns_each_exactly_once(api, customer):
    ids = set(bulk_interactions(customer["id"], 250))
    walked = api.walk(f"/customers/{customer['id']}/interactions", limit=40)
    assert len(walked) == 250 and {i["id"] for i in walked} == ids
    visits = api.walk(f"/customers/{customer['id']}/interactions?type=visit", limit=7)
    assert len(visits) == len({i["id"] for i in visits}) == 83


def test_a_timeline_cursor_does_not_fit_another_customers_timeline(api, customer):
    bulk_interactions(customer["id"], 3)
    other = api.create_customer(name="Other")
    cursor = api.get(f"/customers/{customer['id']}/interactions?limit=1").json["next_cursor"]
    assert_problem(api.get(f"/customers/{other['id']}/interactions?cursor={cursor}"), 400, "cursor")
    assert_problem(
        api.get(f"/customers/{customer['id']}/interactions?type=visit&cursor={cursor}"), 400, "cursor"
    )
