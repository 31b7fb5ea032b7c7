"""A keyed POST whose first attempt committed but whose response never reached the client (the
connection to DynamoDB broke after the commit, or the idempotency record could not be stored):
the client's retry with the same `Idempotency-Key` answers what was written and writes nothing
twice. Runs on moto and on DynamoDB Local, where the conditions are DynamoDB's own."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ReadTimeoutError

from tests.functional.conftest import Api, assert_problem

KEY = "5b0f7e52-8f0e-4d7c-9a55-2d8c2f4e7a10"


@pytest.fixture
def break_after_commit(monkeypatch):
    """`break_after_commit()`: the next TransactWriteItems reaches DynamoDB and commits, then its
    answer is lost as a read timeout. Returns the operations sent from then on."""
    from chalicelib.config import get_settings
    from chalicelib.store import transactions

    dynamodb = transactions.connection(get_settings().region).client
    sent = dynamodb._make_api_call
    plan = {"armed": False, "before": False}
    calls: list[str] = []

    def make_api_call(operation_name, api_params):
        calls.append(operation_name)
        if operation_name != "TransactWriteItems" or not plan["armed"]:
            return sent(operation_name, api_params)
        plan["armed"] = False
        if not plan["before"]:
            sent(operation_name, api_params)
        raise ReadTimeoutError(endpoint_url="https://dynamodb.eu-north-1.amazonaws.com/")

    monkeypatch.setattr(dynamodb, "_make_api_call", make_api_call)

    def arm(*, before: bool = False) -> list[str]:
        plan["armed"], plan["before"] = True, before
        calls.clear()
        return calls

    return arm


def keyed(key: str = KEY) -> dict:
    return {"headers": {"Idempotency-Key": key}}


def timeline(api: Api, customer_id: str) -> list[dict]:
    return api.get(f"/customers/{customer_id}/interactions?limit=50").json["items"]


def test_a_customer_created_before_the_answer_was_lost_is_answered_on_retry_not_taken_for_a_duplicate(
    api, break_after_commit
):
    body = {"name": "Åsa Öberg", "email": "asa@example.com"}
    break_after_commit()

    lost = api.post("/customers", body, **keyed())
    retry = api.post("/customers", body, **keyed())

    assert lost.status >= 500
    assert retry.status == 201, retry.json  # not 409 "email taken" by itself
    assert "idempotent-replayed" not in retry.headers
    assert [c["id"] for c in api.get("/customers?limit=50").json["items"]] == [retry.json["id"]]
    stored = api.get(retry.headers["location"]).json
    assert {k: v for k, v in stored.items() if k != "loyalty"} | {"possible_duplicates": []} == retry.json
    assert [c["id"] for c in api.get("/customers?email=asa@example.com").json["items"]] == [retry.json["id"]]
    replay = api.post("/customers", body, **keyed())
    assert replay.body == retry.body and replay.headers["idempotent-replayed"] == "true"


def test_an_interaction_written_before_the_answer_was_lost_is_written_once(api, break_after_commit):
    customer = api.create_customer()
    purchase = {"type": "purchase", "channel": "web", "currency": "EUR", "items": [
        {"sku": "SKU-1", "name": "Kaffe", "quantity": 2, "unit_price": "4.50"}
    ]}  # fmt: skip
    break_after_commit()

    assert api.post(f"/customers/{customer['id']}/interactions", purchase, **keyed()).status >= 500
    retry = api.post(f"/customers/{customer['id']}/interactions", purchase, **keyed())

    assert retry.status == 201, retry.json
    assert timeline(api, customer["id"]) == [retry.json]  # occurred_at is the first attempt's time
    assert api.get(retry.headers["location"]).json == retry.json


def test_a_return_written_before_the_answer_was_lost_is_answered_not_refused_as_excess(
    api, break_after_commit
):
    customer = api.create_customer()
    bought = api.post(f"/customers/{customer['id']}/interactions", {
        "type": "purchase", "channel": "store", "currency": "EUR",
        "items": [{"sku": "SKU-1", "name": "Kaffe", "quantity": 1, "unit_price": "4.50"}],
    }).json  # fmt: skip
    ret = {"type": "return", "channel": "store", "currency": "EUR", "purchase_id": bought["id"],
           "items": [{"sku": "SKU-1", "name": "Kaffe", "quantity": 1, "unit_price": "4.50"}]}  # fmt: skip
    break_after_commit()

    assert api.post(f"/customers/{customer['id']}/interactions", ret, **keyed()).status >= 500
    retry = api.post(f"/customers/{customer['id']}/interactions", ret, **keyed())

    assert retry.status == 201, retry.json
    assert [i["id"] for i in timeline(api, customer["id"])] == [retry.json["id"], bought["id"]]
    again = api.post(f"/customers/{customer['id']}/interactions", ret, **keyed("another key"))
    assert_problem(again, 409, "items.0.quantity")  # the purchase holds nothing more to return


def test_an_order_placed_before_the_answer_was_lost_is_placed_once(api, break_after_commit):
    assert (
        api.post(
            "/products", {"sku": "SKU-MUG", "names": {"en": "Mug"}, "price": "2.20", "currency": "EUR"}
        ).status
        == 201
    )
    customer = api.create_customer()
    me = api.as_role("customer", customer["id"])
    order = {"channel": "mobile", "items": [{"sku": "SKU-MUG", "quantity": 3}]}
    break_after_commit()

    assert me.post("/me/orders", order, **keyed()).status >= 500
    retry = me.post("/me/orders", order, **keyed())

    assert retry.status == 201, retry.json
    assert me.get("/me/interactions").json["items"] == [retry.json]


def test_a_product_created_before_the_answer_was_lost_is_answered_on_retry(api, break_after_commit):
    body = {"sku": "SKU-TEA", "names": {"en": "Tea"}, "price": "3.10", "currency": "EUR"}
    break_after_commit()

    assert api.post("/products", body, **keyed()).status >= 500
    retry = api.post("/products", body, **keyed())

    assert retry.status == 201, retry.json
    assert api.get("/products/SKU-TEA").json == retry.json
    assert [p["sku"] for p in api.get("/products").json["items"]] == ["SKU-TEA"]


def test_a_write_that_never_reached_dynamodb_is_made_by_the_retry(api, break_after_commit):
    customer = api.create_customer()
    visit = {"type": "visit", "channel": "store"}
    calls = break_after_commit(before=True)

    assert api.post(f"/customers/{customer['id']}/interactions", visit, **keyed()).status >= 500
    assert timeline(api, customer["id"]) == []
    retry = api.post(f"/customers/{customer['id']}/interactions", visit, **keyed())

    assert retry.status == 201, retry.json
    assert timeline(api, customer["id"]) == [retry.json]
    assert calls.count("TransactWriteItems") == 2


def test_another_body_with_the_key_of_a_lost_answer_that_committed_is_422_and_writes_nothing(
    api, break_after_commit
):
    customer = api.create_customer()
    break_after_commit()
    assert (
        api.post(
            f"/customers/{customer['id']}/interactions", {"type": "visit", "channel": "store"}, **keyed()
        ).status
        >= 500
    )
    written = timeline(api, customer["id"])

    other = api.post(
        f"/customers/{customer['id']}/interactions", {"type": "visit", "channel": "web"}, **keyed()
    )

    assert_problem(other, 422, "Idempotency-Key")
    assert timeline(api, customer["id"]) == written


def test_when_the_idempotency_record_cannot_be_stored_the_answer_still_comes_and_a_retry_writes_nothing(
    api, monkeypatch
):
    from chalicelib.api import idempotency

    customer = api.create_customer()
    layer = idempotency.persistence_layer()
    update = type(layer)._update_record
    failures = []

    def failing_update(self, data_record):
        if data_record.status == "COMPLETED" and not failures:
            failures.append(data_record)
            raise ReadTimeoutError(endpoint_url="https://dynamodb.eu-north-1.amazonaws.com/")
        return update(self, data_record)

    monkeypatch.setattr(type(layer), "_update_record", failing_update)
    visit = {"type": "visit", "channel": "store"}

    first = api.post(f"/customers/{customer['id']}/interactions", visit, **keyed())
    retry = api.post(f"/customers/{customer['id']}/interactions", visit, **keyed())

    assert failures and first.status == 201, first.json
    assert retry.status == 201 and retry.body == first.body
    assert timeline(api, customer["id"]) == [first.json]


def test_a_retry_after_an_order_was_placed_answers_it_even_when_the_catalogue_changed(
    api, break_after_commit
):
    assert (
        api.post(
            "/products", {"sku": "SKU-MUG", "names": {"en": "Mug"}, "price": "2.20", "currency": "EUR"}
        ).status
        == 201
    )
    me = api.as_role("customer", api.create_customer()["id"])
    order = {"channel": "web", "items": [{"sku": "SKU-MUG", "quantity": 1}]}
    break_after_commit()
    assert me.post("/me/orders", order, **keyed()).status >= 500
    assert api.patch("/products/SKU-MUG", {"active": False}).status == 200

    retry = me.post("/me/orders", order, **keyed())

    assert retry.status == 201, retry.json
    assert me.get("/me/interactions").json["items"] == [retry.json]


def test_the_first_body_still_gets_its_answer_after_another_body_was_refused_with_its_key(
    api, break_after_commit
):
    customer = api.create_customer()
    visit = {"type": "visit", "channel": "store"}
    break_after_commit()
    assert api.post(f"/customers/{customer['id']}/interactions", visit, **keyed()).status >= 500

    assert_problem(
        api.post(f"/customers/{customer['id']}/interactions", visit | {"channel": "web"}, **keyed()), 422
    )
    retry = api.post(f"/customers/{customer['id']}/interactions", visit, **keyed())

    assert retry.status == 201, retry.json
    assert timeline(api, customer["id"]) == [retry.json]


def test_a_retry_of_an_attempt_that_wrote_nothing_runs_afresh_at_its_own_time(api, break_after_commit):
    customer = api.create_customer()
    visit = {"type": "visit", "channel": "store"}
    break_after_commit(before=True)
    assert api.post(f"/customers/{customer['id']}/interactions", visit, **keyed()).status >= 500
    between = datetime.now(UTC).replace(microsecond=0)

    retry = api.post(f"/customers/{customer['id']}/interactions", visit | {"channel": "web"}, **keyed())

    assert retry.status == 201, retry.json  # the first body was never written: another may run
    assert datetime.fromisoformat(retry.json["created_at"]) >= between
    assert timeline(api, customer["id"]) == [retry.json]


def test_an_erasure_asked_for_before_the_answer_was_lost_is_the_same_job_on_retry(
    api, break_after_commit, pump
):
    customer = api.create_customer()
    break_after_commit()
    assert api.post(f"/customers/{customer['id']}/erase", **keyed()).status >= 500
    pump.drain()  # the job runs: the customer is erased before the client retries

    retry = api.post(f"/customers/{customer['id']}/erase", **keyed())

    assert retry.status == 202, retry.json  # not 404 for the customer it erased
    assert api.get(f"/jobs/{retry.json['id']}").json["status"] == "completed"
    assert [j["id"] for j in _jobs_of(customer["id"])] == [retry.json["id"]]


def _jobs_of(customer_id: str) -> list[dict]:
    import boto3

    from chalicelib.config import get_settings

    items = boto3.resource("dynamodb").Table(get_settings().jobs_table).scan()["Items"]
    return [i for i in items if i["customer_id"] == customer_id]
