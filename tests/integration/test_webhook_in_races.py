"""Inbound webhooks where DynamoDB's conditional writes decide (DynamoDB Local: moto's
in-process tables are not thread-safe): two deliveries of one order processed at once, by two
workers, make one customer and one purchase."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import wiring
from chalicelib.domain.webhook_signatures import headers_for
from chalicelib.services.customers import CustomerService
from tests.functional.conftest import Api

pytestmark = pytest.mark.dynamodb_local

LINE = {"sku": "SKU-TEA", "name": "Grönt te", "quantity": 1, "unit_price": "7.50"}


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _order(order_id: str, email: str) -> dict:
    data = {"order_id": order_id, "customer": {"email": email}, "currency": "EUR", "items": [LINE]}
    return {"type": "order.created", "data": data}


def _deliver(api: Api, source: dict, payload: dict, webhook_id: str) -> None:
    raw = json.dumps(payload).encode()
    headers = headers_for(source["secret"], webhook_id, int(wiring.clock.now().timestamp()), raw)
    reply = api.request("POST", f"/webhooks/{source['id']}", raw=raw, headers=headers, auth=False)
    assert reply.status == 202, reply.json


def test_two_deliveries_of_one_order_racing_make_one_customer_and_one_purchase(api, monkeypatch):
    source = api.post("/webhook-sources", {"name": "Webshop", "kind": "orders"}).json
    processor = wiring.inbound_webhook_processor()
    # One delivery first, alone: every client and connection is made before the threads.
    _deliver(api, source, _order("W-1", "warm.up@example.com"), "msg_warm_up")
    assert processor.process(source["id"], "msg_warm_up").status == "processed"
    _deliver(api, source, _order("A-1", "Race.Condition@Example.com"), "msg_a")
    _deliver(api, source, _order("A-1", "race.condition@example.com"), "msg_b")

    # Both workers look for the customer (and so have found no guard of the order) before
    # either creates it: both create it, both claim the order.
    barrier = threading.Barrier(2, timeout=20)
    waited = threading.local()
    real = CustomerService.find_by_email

    def find_by_email(self, email):
        found = real(self, email)
        if not getattr(waited, "once", False):
            waited.once = True
            barrier.wait()
        return found

    monkeypatch.setattr(CustomerService, "find_by_email", find_by_email)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda wid: processor.process(source["id"], wid), ["msg_a", "msg_b"]))
    monkeypatch.setattr(CustomerService, "find_by_email", real)

    assert [o.status for o in outcomes] == ["processed", "processed"]
    assert outcomes[0].customer_id == outcomes[1].customer_id
    assert outcomes[0].interaction_id == outcomes[1].interaction_id
    [customer] = api.get("/customers?email=race.condition@example.com").json["items"]
    assert customer["id"] == outcomes[0].customer_id
    [purchase] = api.get(f"/customers/{customer['id']}/interactions").json["items"]
    assert (purchase["id"], purchase["order_id"]) == (outcomes[0].interaction_id, "A-1")
    listed = api.get("/customers?limit=100").json["items"]
    assert sorted(c["email"].casefold() for c in listed) == [
        "race.condition@example.com",
        "warm.up@example.com",
    ]
