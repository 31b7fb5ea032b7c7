"""The loyalty consumer, invoked with the records moto's stream holds, in Lambda's shape."""

from __future__ import annotations

import copy
import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import Api, assert_problem
from tests.integration.streams import customer_records, interaction_records

SCHEDULED = json.loads((Path(__file__).parent / "events" / "scheduled_daily.json").read_text())


@pytest.fixture
def api(client, staff_token, frozen_clock) -> Api:
    return Api(client, staff_token)


def purchase(
    amount: str = "10.00", sku: str = "SKU-COFFEE-500", quantity: int = 1, currency: str = "EUR", **kw
):
    return {
        "type": "purchase",
        "channel": "store",
        "currency": currency,
        "items": [{"sku": sku, "name": "Kaffe 500 g", "quantity": quantity, "unit_price": amount}],
        **kw,
    }


def consume(client, records: list[dict]) -> dict:
    return client.lambda_.invoke("update_loyalty", {"Records": records}).payload


def loyalty(api: Api, customer_id: str) -> dict:
    reply = api.get(f"/customers/{customer_id}/loyalty")
    assert reply.status == 200, reply.json
    return reply.json


def test_purchases_and_a_return_become_aggregates_and_habits(client, api, frozen_clock):
    c = api.create_customer(name="Åsa Öberg")
    now = frozen_clock.now()
    bought = []
    for days_ago in (60, 40, 20):
        at = (now - timedelta(days=days_ago)).isoformat()
        bought.append(
            api.post(f"/customers/{c['id']}/interactions", purchase("12.90", quantity=2, occurred_at=at)).json
        )
    api.post(f"/customers/{c['id']}/interactions", purchase("99.00", sku="SKU-SHOES", currency="SEK"))
    api.post(
        f"/customers/{c['id']}/interactions",
        {**purchase("12.90"), "type": "return", "purchase_id": bought[0]["id"]},
    )
    api.post(
        f"/customers/{c['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": "low", "subject": "x"},
    )
    assert consume(client, interaction_records()) == {"batchItemFailures": []}

    data = loyalty(api, c["id"])
    assert data["frequency"] == 4 and data["returns"] == 1
    assert data["net_spend"] == {"EUR": "64.50", "SEK": "99.00"}
    assert data["monetary"] == "64.50"
    assert data["recency_days"] == 0
    coffee = next(h for h in data["purchase_habits"] if h["sku"] == "SKU-COFFEE-500")
    assert coffee["times_bought"] == 3 and coffee["quantity"] == 6
    assert coffee["mean_interval_days"] == 20.0
    assert coffee["next_expected_at"] == "2026-11-26T12:00:00.000Z"
    shoes = next(h for h in data["purchase_habits"] if h["sku"] == "SKU-SHOES")
    assert shoes["mean_interval_days"] is None and shoes["next_expected_at"] is None
    assert [h["sku"] for h in data["purchase_habits"]] == ["SKU-COFFEE-500", "SKU-SHOES"]
    summary = api.get(f"/customers/{c['id']}").json["loyalty"]
    assert {k: summary[k] for k in ("score", "tier", "frequency", "monetary")} == {
        k: data[k] for k in ("score", "tier", "frequency", "monetary")
    }


def test_a_replayed_batch_and_duplicates_inside_a_batch_change_nothing(client, api):
    c = api.create_customer()
    for amount in ("10.00", "20.00"):
        api.post(f"/customers/{c['id']}/interactions", purchase(amount))
    records = interaction_records()
    assert consume(client, records + copy.deepcopy(records)) == {"batchItemFailures": []}
    first = loyalty(api, c["id"])
    assert consume(client, records) == {"batchItemFailures": []}
    assert consume(client, list(reversed(records))) == {"batchItemFailures": []}
    assert loyalty(api, c["id"]) == first
    assert first["frequency"] == 2 and first["monetary"] == "30.00"


def test_the_returned_quantity_written_on_a_purchase_does_not_count_twice(client, api):
    c = api.create_customer()
    bought = api.post(f"/customers/{c['id']}/interactions", purchase("10.00", quantity=3)).json
    api.post(
        f"/customers/{c['id']}/interactions",
        {**purchase("10.00"), "type": "return", "purchase_id": bought["id"]},
    )
    records = interaction_records()
    assert [r["eventName"] for r in records] == ["INSERT", "INSERT", "MODIFY"]
    consume(client, records)
    data = loyalty(api, c["id"])
    assert (data["frequency"], data["returns"], data["monetary"]) == (1, 1, "20.00")


def _records_of(customer_ids: set[str]) -> list[dict]:
    return [r for r in interaction_records() if r["dynamodb"]["Keys"]["customer_id"]["S"] in customer_ids]


def test_one_bad_record_is_reported_by_sequence_number_and_the_others_are_applied(client, api):
    good = api.create_customer(name="Good")
    api.post(f"/customers/{good['id']}/interactions", purchase("10.00"))
    records = interaction_records()
    poison = copy.deepcopy(records[0])
    poison["dynamodb"]["NewImage"]["amount"] = {"S": "ten euros"}
    poison["dynamodb"]["Keys"]["id"]["S"] = poison["dynamodb"]["NewImage"]["id"]["S"] = "int_POISON"
    poison["dynamodb"]["SequenceNumber"] = "900000000000000000001"
    ghost = copy.deepcopy(records[0])
    for where in (ghost["dynamodb"]["Keys"], ghost["dynamodb"]["NewImage"]):
        where["customer_id"]["S"] = "cus_NOBODY"
    ghost["dynamodb"]["SequenceNumber"] = "900000000000000000002"
    unparseable = {
        "eventID": "x",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "dynamodb": {"SequenceNumber": "900000000000000000003", "Keys": {}},
    }
    result = consume(client, [poison, *records, ghost, unparseable])
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == [
        "900000000000000000001",
        "900000000000000000002",
        "900000000000000000003",
    ]
    assert loyalty(api, good["id"])["monetary"] == "10.00"


def test_deleting_a_purchase_removes_it_from_the_aggregates(client, api, frozen_clock):
    from chalicelib.store.models import InteractionModel

    c = api.create_customer()
    now = frozen_clock.now()
    first = api.post(
        f"/customers/{c['id']}/interactions",
        purchase("10.00", occurred_at=(now - timedelta(days=10)).isoformat()),
    ).json
    last = api.post(
        f"/customers/{c['id']}/interactions",
        purchase("5.00", occurred_at=(now - timedelta(days=2)).isoformat()),
    ).json
    consume(client, interaction_records())
    assert loyalty(api, c["id"])["recency_days"] == 2
    InteractionModel.get(c["id"], last["id"]).delete()
    consume(client, interaction_records())
    data = loyalty(api, c["id"])
    assert (data["frequency"], data["monetary"], data["recency_days"]) == (1, "10.00", 10)
    assert data["purchase_habits"][0]["last_purchase_at"] == first["occurred_at"]
    consume(client, interaction_records())
    assert loyalty(api, c["id"])["frequency"] == 1


def test_deleting_a_customer_leaves_no_loyalty_items(client, api):
    c = api.create_customer()
    api.post(f"/customers/{c['id']}/interactions", purchase("10.00"))
    consume(client, interaction_records())
    api.delete(f"/customers/{c['id']}")
    client.lambda_.invoke("on_customer_change", {"Records": customer_records()})
    assert consume(client, interaction_records()) == {"batchItemFailures": []}
    table = boto3.resource("dynamodb").Table(get_settings().customers_table)
    left = [i for i in table.scan()["Items"] if i["pk"] == f"CUSTOMER#{c['id']}"]
    assert {i["sk"].split("#")[0] for i in left} == {"DELETED", "AUDIT"}
    assert_problem(api.get(f"/customers/{c['id']}/loyalty"), 404)


def test_recency_decays_with_time_without_any_write(client, api, frozen_clock):
    c = api.create_customer()
    api.post(f"/customers/{c['id']}/interactions", purchase("5000.00"))
    consume(client, interaction_records())
    fresh = api.get(f"/customers/{c['id']}").json["loyalty"]
    assert (fresh["recency_days"], fresh["tier"], fresh["score"]) == (0, "gold", 67)
    frozen_clock.advance(timedelta(days=31))
    decayed = loyalty(api, c["id"])
    assert (decayed["recency_days"], decayed["recency_score"], decayed["tier"], decayed["score"]) == (
        31,
        4,
        "silver",
        58,
    )
    frozen_clock.advance(timedelta(days=400))
    assert loyalty(api, c["id"])["recency_score"] == 1


def _events_queue_messages() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        if not got.get("Messages"):
            return found
        for message in got["Messages"]:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_tier_change_publishes_one_event_even_when_redelivered(client, api, frozen_clock):
    _events_queue_messages()
    c = api.create_customer()
    api.post(f"/customers/{c['id']}/interactions", purchase("20.00"))
    consume(client, interaction_records())
    api.post(f"/customers/{c['id']}/interactions", purchase("5000.00"))
    consume(client, interaction_records())
    changes = customer_records()
    for _ in range(3):
        assert client.lambda_.invoke("on_customer_change", {"Records": changes}).payload == {
            "batchItemFailures": []
        }
    events = [e for e in _events_queue_messages() if e["type"].startswith("loyalty.")]
    assert [(e["type"], e["data"]["old_tier"], e["data"]["new_tier"]) for e in events] == [
        ("loyalty.tier_changed", "bronze", "gold")
    ]
    assert events[0]["customer_id"] == events[0]["data"]["customer_id"] == c["id"]
    assert events[0]["data"]["score"] == 75


def test_the_daily_refresh_touches_only_customers_whose_tier_changed(client, api, frozen_clock):
    from chalicelib.store.models import LoyaltyModel

    big = api.create_customer(name="Big spender")
    small = api.create_customer(name="Small spender")
    api.post(f"/customers/{big['id']}/interactions", purchase("5000.00"))
    api.post(f"/customers/{small['id']}/interactions", purchase("1.00"))
    consume(client, interaction_records())
    assert api.get("/customers?tier=gold").json["items"][0]["id"] == big["id"]
    frozen_clock.advance(timedelta(days=31))
    assert client.lambda_.invoke("refresh_loyalty_tiers", SCHEDULED).payload == {"refreshed": 1}
    assert LoyaltyModel.get(f"CUSTOMER#{big['id']}", "LOYALTY").tier == "silver"
    assert api.get("/customers?tier=gold").json["items"] == []
    assert [i["id"] for i in api.get("/customers?tier=silver").json["items"]] == [big["id"]]
    assert client.lambda_.invoke("refresh_loyalty_tiers", SCHEDULED).payload == {"refreshed": 0}


def test_tier_lists_are_highest_score_first_and_paged(client, api):
    ids = []
    for i, amount in enumerate(("600.00", "1200.00", "5000.00")):
        c = api.create_customer(name=f"Kund {i}")
        ids.append(c["id"])
        for _ in range(4):
            api.post(f"/customers/{c['id']}/interactions", purchase(amount))
    consume(client, interaction_records())
    walked = api.walk("/customers?tier=platinum", limit=1) + api.walk("/customers?tier=gold", limit=1)
    assert [c["id"] for c in walked] == ids[::-1]
    scores = [c["loyalty"]["score"] for c in walked]
    assert scores == sorted(scores, reverse=True)
    assert_problem(api.get("/customers?tier=diamond"), 400, "tier")
    assert_problem(api.get("/customers?tier=gold&q=kund"), 400, "tier")


def test_a_batch_costs_one_read_and_one_write_of_each_customers_aggregates(client, api, monkeypatch):
    import botocore.client

    customers = [api.create_customer(name=f"K {i}")["id"] for i in range(3)]
    for cid in customers:
        for amount in ("1.00", "2.00", "3.00", "4.00"):
            api.post(f"/customers/{cid}/interactions", purchase(amount))
    records = interaction_records()
    calls: list[tuple[str, int]] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        size = len(params.get("TransactItems", [])) or sum(
            len(v["Keys"]) for v in params.get("RequestItems", {}).values()
        )
        calls.append((operation, size))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    consume(client, records)
    operations = [op for op, _ in calls]
    # 3 aggregates, 12 guards and 3 habits (one SKU each): one request of 18 keys.
    assert [(op, size) for op, size in calls if op == "BatchGetItem"] == [("BatchGetItem", 18)]
    # One per customer: aggregates + the SKU's habit + 4 guards + the profile check; then the
    # co-purchase counts of the same batch: per customer one Query of what they bought before
    # and one write for their one new SKU (its buyers + its guard + the profile check).
    assert [size for op, size in calls if op == "TransactWriteItems"] == [7, 7, 7, 3, 3, 3]
    assert operations[4:] == ["Query", "TransactWriteItems"] * 3
    assert set(operations) == {"BatchGetItem", "TransactWriteItems", "Query"}


def _new_records(seen: list[dict]) -> list[dict]:
    delivered = {r["dynamodb"]["SequenceNumber"] for r in seen}
    return [r for r in interaction_records() if r["dynamodb"]["SequenceNumber"] not in delivered]


def test_records_of_a_customer_whose_loyalty_is_being_purged_are_skipped_and_the_rest_applied(
    client, api, frozen_clock
):
    from chalicelib import wiring

    gone, kept = api.create_customer(name="Gone"), api.create_customer(name="Kept")
    now = frozen_clock.now()
    skus = ("SKU-COFFEE-500", "SKU-MUG-CERAMIC", "SKU-TEA-GREEN-100")
    bought = []
    for n in range(12):  # over 190 days, the newest last
        at = (now - timedelta(days=190 - 17 * n)).isoformat()
        body = purchase("10.00", sku=skus[n % 3], quantity=2, occurred_at=at)
        bought.append(api.post(f"/customers/{gone['id']}/interactions", body).json)
    api.post(
        f"/customers/{gone['id']}/interactions",
        {**purchase("10.00", sku=skus[0]), "type": "return", "purchase_id": bought[0]["id"]},
    )
    for _ in range(4):
        api.post(f"/customers/{gone['id']}/interactions", {"type": "visit", "channel": "store"})
    api.post(f"/customers/{kept['id']}/interactions", purchase("20.00"))
    applied = interaction_records()
    assert consume(client, applied) == {"batchItemFailures": []}

    # The customers stream's purge, partway: the timeline is deleted (REMOVE records on the
    # interactions stream) and so are some of the loyalty guards, but not yet the guard of the
    # newest purchase (which holds the last purchase time) nor the aggregates.
    assert api.delete(f"/customers/{gone['id']}").status == 204
    wiring.repositories()[1].delete_all_of(gone["id"])
    table = boto3.resource("dynamodb").Table(get_settings().customers_table)
    for p in bought[:-1]:
        table.delete_item(Key={"pk": f"CUSTOMER#{gone['id']}", "sk": f"APPLIED#{p['id']}"})
    api.post(f"/customers/{kept['id']}/interactions", purchase("5.00"))
    batch = _new_records(applied)
    assert len(batch) == 18

    assert consume(client, batch) == {"batchItemFailures": []}
    assert consume(client, batch) == {"batchItemFailures": []}  # redelivered
    data = loyalty(api, kept["id"])
    assert (data["frequency"], data["monetary"]) == (2, "25.00")
    client.lambda_.invoke("on_customer_change", {"Records": customer_records()})
    left = [i for i in table.scan()["Items"] if i["pk"] == f"CUSTOMER#{gone['id']}"]
    assert {i["sk"].split("#")[0] for i in left} == {"DELETED", "AUDIT"}


def test_a_customer_whose_writes_keep_failing_fails_only_their_own_records(client, api, monkeypatch):
    from chalicelib.store import transactions
    from tests.functional.test_transaction_conflicts import _cancelled

    stuck, fine = api.create_customer(name="Stuck"), api.create_customer(name="Fine")
    for who in (stuck, fine, stuck):
        api.post(f"/customers/{who['id']}/interactions", purchase("10.00"))
    records = interaction_records()
    dynamodb = transactions.connection(get_settings().region).client
    sent = dynamodb._make_api_call

    def conflicting(operation_name, api_params):
        # Another writer keeps working on the stuck customer's items: DynamoDB cancels each try.
        if operation_name == "TransactWriteItems" and f"CUSTOMER#{stuck['id']}" in json.dumps(api_params):
            others = ["None"] * (len(api_params["TransactItems"]) - 1)
            raise _cancelled(dynamodb, [*others, "TransactionConflict"])
        return sent(operation_name, api_params)

    monkeypatch.setattr(dynamodb, "_make_api_call", conflicting)
    result = consume(client, records)
    stuck_records = [r for r in records if r["dynamodb"]["Keys"]["customer_id"]["S"] == stuck["id"]]
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(
        r["dynamodb"]["SequenceNumber"] for r in stuck_records
    )
    assert loyalty(api, fine["id"])["frequency"] == 1
    assert loyalty(api, stuck["id"])["frequency"] == 0

    monkeypatch.setattr(dynamodb, "_make_api_call", sent)
    assert consume(client, records) == {"batchItemFailures": []}  # Lambda delivers them again
    assert (loyalty(api, fine["id"])["frequency"], loyalty(api, stuck["id"])["frequency"]) == (1, 2)
