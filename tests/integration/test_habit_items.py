"""Purchase habits as items of their own (CUSTOMER#<id>/HABIT#<sku>): a customer may buy any
number of SKUs. The loyalty consumer is driven with the stream records the API's writes made."""

from __future__ import annotations

import copy
import json
from datetime import timedelta

import boto3
import botocore.client
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from chalicelib.config import get_settings
from tests.functional.conftest import Api, assert_problem
from tests.integration.streams import interaction_records

# 200 characters (the longest name the API takes), most of them two bytes of UTF-8.
LONG_NAME = "Кофе молотый, тёмная обжарка, 500 г; " * 6


@pytest.fixture
def api(client, staff_token, frozen_clock) -> Api:
    return Api(client, staff_token)


@pytest.fixture(autouse=True)
def _no_co_purchase_counts(monkeypatch):
    # The same consumer counts co-purchases: a first purchase of 100 SKUs is 9,900 pair updates
    # in some 200 transactions (minutes on moto, which copies its table per transaction item,
    # and over a minute on DynamoDB Local). These tests are about habits; the counting, a
    # customer of 120 SKUs included, is tested in tests/integration/test_co_purchase_consumer.py.
    from chalicelib.services.recommendations import RecommendationService

    monkeypatch.setattr(RecommendationService, "apply", lambda self, purchases, deadline=None: {})


def _sku(n: int) -> str:
    return f"SKU-{n:05d}-" + "X" * 53  # 64 characters, the longest SKU the API takes


def _name(n: int) -> str:
    return (f"{n} {LONG_NAME}")[:199].rstrip() + "ö"


def _purchase(skus: range, quantity: int = 1, occurred_at: str | None = None) -> dict:
    items = [{"sku": _sku(n), "name": _name(n), "quantity": quantity, "unit_price": "1.00"} for n in skus]
    body = {"type": "purchase", "channel": "web", "currency": "EUR", "items": items}
    return body | ({"occurred_at": occurred_at} if occurred_at else {})


def consume(client, records: list[dict]) -> dict:
    return client.lambda_.invoke("update_loyalty", {"Records": records}).payload


def _transactions(monkeypatch) -> list[int]:
    """The sizes of the TransactWriteItems requests made from now on."""
    sizes: list[int] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if operation == "TransactWriteItems":
            sizes.append(len(params["TransactItems"]))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return sizes


def _habit_items(customer_id: str) -> list[dict]:
    dynamodb = boto3.client("dynamodb")
    items, start = [], {}
    while True:
        page = dynamodb.query(
            TableName=get_settings().customers_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :habit)",
            ExpressionAttributeValues={":pk": {"S": f"CUSTOMER#{customer_id}"}, ":habit": {"S": "HABIT#"}},
            **start,
        )
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _scan(table_name: str) -> list[dict]:
    table = boto3.resource("dynamodb").Table(table_name)
    items, start = [], {}
    while True:
        page = table.scan(**start)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        start = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def _bytes(item: dict) -> int:
    """The item's size as DynamoDB counts it (names and values; numbers taken at their width)."""
    return sum(len(k.encode()) + len(next(iter(v.values())).encode()) for k, v in item.items())


@pytest.mark.dynamodb_local  # the size DynamoDB refuses in one item; moto takes a minute here
def test_habits_over_400_kb_are_all_kept_and_listed_and_a_replay_changes_nothing(
    client, api, frozen_clock, monkeypatch
):
    c = api.create_customer(name="Maria Dela Cruz")
    timeline = f"/customers/{c['id']}/interactions"
    earlier = (frozen_clock.now() - timedelta(days=30)).isoformat()
    # 500 distinct SKUs, at most 100 a purchase (the API's limit); SKUs 0-99 are bought twice.
    assert api.post(timeline, _purchase(range(100), occurred_at=earlier)).status == 201
    for first in range(0, 500, 100):
        assert api.post(timeline, _purchase(range(first, first + 100), quantity=2)).status == 201
    records = interaction_records()
    assert len(records) == 6

    assert consume(client, records) == {"batchItemFailures": []}

    habits = api.walk(f"/customers/{c['id']}/habits", limit=100)
    assert [h["sku"] for h in habits] == [_sku(n) for n in range(500)]
    for n, habit in enumerate(habits):
        twice = n < 100
        assert habit["name"] == _name(n)
        assert (habit["times_bought"], habit["quantity"]) == ((2, 3) if twice else (1, 2))
        assert habit["mean_interval_days"] == (30.0 if twice else None)
    stored = _habit_items(c["id"])
    assert len(stored) == 500 and sum(map(_bytes, stored)) > 400_000  # beyond one item's limit

    loyalty = api.get(f"/customers/{c['id']}/loyalty").json
    assert (loyalty["frequency"], loyalty["monetary"], loyalty["sku_count"]) == (6, "1100.00", 500)
    # The first 100 in the response's order: the SKUs expected again, then by SKU.
    assert [h["sku"] for h in loyalty["purchase_habits"]] == [_sku(n) for n in range(100)]
    assert all(h["next_expected_at"] is not None for h in loyalty["purchase_habits"])

    writes = _transactions(monkeypatch)
    again = copy.deepcopy(records)
    assert consume(client, records + list(reversed(again))) == {"batchItemFailures": []}
    assert consume(client, records[2:4]) == {"batchItemFailures": []}
    assert writes == []  # every guard says its part is applied: nothing is written
    assert api.walk(f"/customers/{c['id']}/habits", limit=100) == habits
    assert api.get(f"/customers/{c['id']}/loyalty").json == loyalty


@pytest.mark.dynamodb_local  # moto copies its table per item of a transaction: 20 s here
def test_a_purchase_of_100_skus_is_written_in_parts_and_its_removal_takes_every_habit_back(
    client, api, monkeypatch
):
    from chalicelib.store.models import InteractionModel

    c = api.create_customer(name="Nguyễn Văn An")
    kept = api.post(f"/customers/{c['id']}/interactions", _purchase(range(2))).json
    big = api.post(f"/customers/{c['id']}/interactions", _purchase(range(100))).json
    writes = _transactions(monkeypatch)
    assert consume(client, interaction_records()) == {"batchItemFailures": []}
    # Parts of 48, 48 and 4 SKUs: each transaction holds at most 100 items.
    assert len(writes) == 2 and max(writes) <= 100
    assert api.get(f"/customers/{c['id']}/loyalty").json["sku_count"] == 100

    InteractionModel.get(c["id"], big["id"]).delete()
    assert consume(client, interaction_records()) == {"batchItemFailures": []}
    loyalty = api.get(f"/customers/{c['id']}/loyalty").json
    assert (loyalty["frequency"], loyalty["sku_count"], loyalty["monetary"]) == (1, 2, "2.00")
    assert [(h["sku"], h["times_bought"]) for h in loyalty["purchase_habits"]] == [(_sku(0), 1), (_sku(1), 1)]
    assert all(h["last_purchase_at"] == kept["occurred_at"] for h in loyalty["purchase_habits"])
    assert len(_habit_items(c["id"])) == 2
    assert consume(client, interaction_records()) == {"batchItemFailures": []}  # the REMOVE again
    assert api.get(f"/customers/{c['id']}/loyalty").json == loyalty


@pytest.mark.dynamodb_local  # moto copies its table per item of a transaction
def test_a_purchase_cut_off_after_its_first_transaction_is_completed_by_the_redelivery_and_counted_once(
    client, api, monkeypatch
):
    from chalicelib.domain.storage import VersionConflict
    from chalicelib.store.loyalty import LoyaltyRepository

    c = api.create_customer(name="Åsa Öberg")
    api.post(f"/customers/{c['id']}/interactions", _purchase(range(100), quantity=3))
    records = interaction_records()
    save, saved = LoyaltyRepository.save, []

    def first_only(self, *args, **kwargs):
        if saved:
            raise VersionConflict("another write came first")
        saved.append(save(self, *args, **kwargs))

    monkeypatch.setattr(LoyaltyRepository, "save", first_only)
    with pytest.raises(BatchProcessingError, match="All records failed"):  # Lambda retries the batch
        consume(client, records)
    partly = api.get(f"/customers/{c['id']}/loyalty").json["sku_count"]
    assert 0 < partly < 100  # some parts are applied, not all

    monkeypatch.setattr(LoyaltyRepository, "save", save)
    assert consume(client, records) == {"batchItemFailures": []}
    assert consume(client, records) == {"batchItemFailures": []}
    habits = api.walk(f"/customers/{c['id']}/habits", limit=100)
    assert [(h["sku"], h["times_bought"], h["quantity"]) for h in habits] == [
        (_sku(n), 1, 3) for n in range(100)
    ]
    loyalty = api.get(f"/customers/{c['id']}/loyalty").json
    assert (loyalty["frequency"], loyalty["monetary"], loyalty["sku_count"]) == (1, "300.00", 100)


def test_the_habits_route_pages_in_sku_order_and_answers_404_and_400_as_problems(client, api):
    c = api.create_customer(name="Saša Kovačič")
    api.post(f"/customers/{c['id']}/interactions", _purchase(range(5)))
    consume(client, interaction_records())
    first = api.get(f"/customers/{c['id']}/habits?limit=2").json
    assert [h["sku"] for h in first["items"]] == [_sku(0), _sku(1)] and first["next_cursor"]
    assert [h["sku"] for h in api.walk(f"/customers/{c['id']}/habits", limit=2)] == [
        _sku(n) for n in range(5)
    ]
    other = api.create_customer(name="Jyrki Mäkelä")
    assert api.get(f"/customers/{other['id']}/habits").json == {"items": [], "next_cursor": None}
    assert_problem(api.get(f"/customers/{other['id']}/habits?cursor={first['next_cursor']}"), 400, "cursor")
    assert_problem(api.get(f"/customers/{c['id']}/habits?limit=0"), 400, "limit")
    assert_problem(api.get("/customers/cus_nope/habits"), 404)


def test_the_export_holds_every_habit_and_erasure_keeps_each_one_anonymously_without_its_name(
    client, api, pump
):
    c = api.create_customer(name="Ingegärd Pålsson")
    api.post(f"/customers/{c['id']}/interactions", _purchase(range(50)))  # in two parts
    api.post(f"/customers/{c['id']}/interactions", _purchase(range(50, 52)))
    assert consume(client, interaction_records()) == {"batchItemFailures": []}
    shown = api.get(f"/customers/{c['id']}/loyalty").json

    export = api.get(f"/customers/{c['id']}/export").json["loyalty"]
    assert sorted(h["sku"] for h in export["purchase_habits"]) == [_sku(n) for n in range(52)]
    assert export["purchase_habits"] == shown["purchase_habits"] and export["sku_count"] == 52

    assert api.post(f"/customers/{c['id']}/erase").status == 202
    pump.drain()  # the erasure job
    customers = _scan(get_settings().customers_table)
    [aggregates] = [i for i in customers if i["pk"].startswith("ANONYMOUS#") and i["sk"] == "LOYALTY"]
    habits = [i for i in customers if i["pk"] == aggregates["pk"] and i["sk"].startswith("HABIT#")]
    assert sorted(json.loads(i["habit"])["sku"] for i in habits) == [_sku(n) for n in range(52)]
    assert not any("name" in json.loads(i["habit"]) or "Кофе" in i["habit"] for i in habits)
    assert json.loads(habits[0]["habit"])["times_bought"] == 1
    assert _habit_items(c["id"]) == []


def test_habits_and_guards_stored_before_habits_had_items_are_read_moved_and_never_counted_twice(
    client, api, frozen_clock, monkeypatch
):
    """The former layout: every habit inside the aggregates item, and one guard holding a
    whole purchase, however many SKUs it had."""
    from chalicelib.domain.loyalty.aggregates import from_scratch
    from chalicelib.domain.loyalty.contributions import contribution_of
    from chalicelib.domain.loyalty.scoring import score
    from chalicelib.events.loyalty import read_image
    from chalicelib.store.loyalty_items import loyalty_item
    from chalicelib.store.models import AppliedModel, InteractionModel, LoyaltyModel

    c = api.create_customer(name="Mojca Žagar")
    big = api.post(f"/customers/{c['id']}/interactions", _purchase(range(50))).json
    api.post(f"/customers/{c['id']}/interactions", _purchase(range(50, 51)))
    records = interaction_records()
    contributions = [contribution_of(read_image(r["dynamodb"]["NewImage"])) for r in records]
    aggregates = from_scratch(contributions)
    for contribution in contributions:
        AppliedModel(
            f"CUSTOMER#{c['id']}",
            f"APPLIED#{contribution.interaction_id}",
            applied_version=1,
            contribution=json.dumps(contribution.to_dict()),
        ).save()
    item = loyalty_item(
        c["id"], aggregates, score(aggregates, frozen_clock.now(), *_scoring()), None, frozen_clock.now()
    )
    former = aggregates.to_dict()
    del former["sku_count"]
    item.aggregates = json.dumps(former)
    item.save()

    before = api.get(f"/customers/{c['id']}/loyalty").json
    assert before["sku_count"] == 51 and len(before["purchase_habits"]) == 51
    listed = api.walk(f"/customers/{c['id']}/habits", limit=7)
    assert [h["sku"] for h in listed] == [_sku(n) for n in range(51)]

    assert consume(client, records) == {"batchItemFailures": []}  # moves the habits, counts nothing
    assert json.loads(LoyaltyModel.get(f"CUSTOMER#{c['id']}", "LOYALTY").aggregates)["skus"] == {}
    assert len(_habit_items(c["id"])) == 51
    assert api.get(f"/customers/{c['id']}/loyalty").json == before
    assert api.walk(f"/customers/{c['id']}/habits", limit=7) == listed
    writes = _transactions(monkeypatch)
    assert consume(client, records) == {"batchItemFailures": []}
    assert writes == []

    InteractionModel.get(c["id"], big["id"]).delete()  # its guard holds all 50 SKUs
    assert consume(client, interaction_records()) == {"batchItemFailures": []}
    after = api.get(f"/customers/{c['id']}/loyalty").json
    assert (after["frequency"], after["sku_count"]) == (1, 1)
    assert [h["sku"] for h in after["purchase_habits"]] == [_sku(50)]
    assert len(_habit_items(c["id"])) == 1


def _scoring():
    from chalicelib import wiring

    return wiring.loyalty_config(), get_settings().base_currency
