"""`customer.possible_duplicate` from the customers stream, for customers created through the
API and through inbound webhooks; duplicate detection's items go with a deleted or erased
customer."""

from __future__ import annotations

import pytest

from tests.functional.conftest import Api
from tests.functional.test_webhooks_in import create_source, deliver, order
from tests.integration.test_events import _events

PHONE = "+63 917 123 4567"


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _store():
    from chalicelib import wiring

    return wiring.duplicate_repository()


def test_a_customer_created_with_possible_duplicates_publishes_their_ids_and_scores_only(api, pump):
    first = api.create_customer(name="Maria Santos", phone=PHONE, email="maria@example.ph")
    second = api.create_customer(name="María Santos", phone="+639171234567")
    assert second["possible_duplicates"] == [first["id"]]
    pump.drain()

    flagged = [e for e in _events() if e["type"] == "customer.possible_duplicate"]
    assert len(flagged) == 1
    [event] = flagged
    assert event["customer_id"] == second["id"]
    assert event["data"] == {
        "customer_id": second["id"],
        "candidates": [{"customer_id": first["id"], "score": 0.94}],
    }


def test_a_customer_created_alone_publishes_no_possible_duplicate(api, pump):
    api.create_customer(name="Maria Santos", phone=PHONE)
    api.create_customer(name="Santos Maria")  # a name alone: under the threshold
    pump.drain()
    assert [e["type"] for e in _events() if e["type"].startswith("customer.")] == ["customer.created"] * 2


def test_a_customer_created_by_an_inbound_webhook_gets_its_possible_duplicates_noted(api, pump, frozen_clock):
    known = api.create_customer(name="Maria Santos", phone=PHONE, email="maria@example.ph")
    shop = create_source(api, "orders", "Webshop")
    buyer = {"email": "m.santos@shop.example", "name": "Maria Santos", "phone": PHONE}
    assert deliver(api, shop, order("A-1", customer=buyer)).status == 202
    pump.drain()

    [created] = api.get("/customers?email=m.santos@shop.example").json["items"]
    assert _store().noted_candidates(created["id"]) == [(known["id"], 0.94)]
    flagged = [e for e in _events() if e["type"] == "customer.possible_duplicate"]
    assert [e["data"]["candidates"] for e in flagged] == [[{"customer_id": known["id"], "score": 0.94}]]
    assert [d["customer_id"] for d in api.get(f"/customers/{created['id']}/duplicates").json["items"]] == [
        known["id"]
    ]


@pytest.mark.parametrize("how", ["delete", "erase"])
def test_detection_items_go_with_a_deleted_or_erased_customer(api, pump, how):
    first = api.create_customer(name="Maria Santos", phone=PHONE)
    second = api.create_customer(name="Maria Santos", phone=PHONE)
    other = api.create_customer(name="Eleanor Whitfield")
    assert api.post(f"/customers/{second['id']}/not-duplicate", {"customer_id": other["id"]}).status == 204
    store = _store()
    assert store.noted_candidates(second["id"]) != [] and store.not_duplicates(second["id"]) == {other["id"]}

    if how == "delete":
        assert api.delete(f"/customers/{second['id']}").status == 204
    else:
        assert api.post(f"/customers/{second['id']}/erase").status == 202
    pump.drain()

    assert store.noted_candidates(second["id"]) == [] and store.not_duplicates(second["id"]) == set()
    from chalicelib.store.models import MatchKeyModel

    # Its lookups are gone with the profile: the first customer has no candidate left.
    assert [m.customer_id for m in MatchKeyModel.query("PHONE#+639171234567")] == [first["id"]]
    assert api.get(f"/customers/{first['id']}/duplicates").json["items"] == []
