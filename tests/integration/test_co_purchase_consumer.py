"""The co-purchase consumer, invoked with the records moto's stream holds, in Lambda's shape:
first purchases count, repeats, replays and duplicates do not, and erasure keeps the counts."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from chalicelib.store.co_purchases import CoPurchaseRepository
from tests.functional.conftest import Api
from tests.integration.streams import interaction_records

EVENT = Path(__file__).parent / "events" / "customer_profile_removed.json"


@pytest.fixture
def api(client, staff_token, frozen_clock) -> Api:
    return Api(client, staff_token)


def buy(api: Api, customer_id: str, *skus: str) -> None:
    items = [{"sku": s, "name": s.title(), "quantity": 1, "unit_price": "5.00"} for s in skus]
    reply = api.post(
        f"/customers/{customer_id}/interactions",
        {"type": "purchase", "channel": "store", "currency": "EUR", "items": items},
    )
    assert reply.status == 201, reply.json


def consume(client, records: list[dict]) -> dict:
    return client.lambda_.invoke("update_loyalty", {"Records": records}).payload


def counts(*skus: str) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    repository = CoPurchaseRepository("eu-north-1")
    pairs = {(sku, other): n for sku in skus for other, n in repository.pairs(sku, 1, 100, None)[0]}
    return repository.buyers(skus), pairs


def test_first_purchases_count_pairs_both_ways_and_buyers_once(client, api):
    ada, bo = api.create_customer(name="Ada Lind"), api.create_customer(name="Bo Ek")
    buy(api, ada["id"], "TEA", "MUG")
    buy(api, ada["id"], "TEA", "HONEY")  # TEA again: a repeat
    buy(api, bo["id"], "TEA", "MUG")
    assert consume(client, interaction_records()) == {"batchItemFailures": []}

    buyers, pairs = counts("TEA", "MUG", "HONEY")
    assert buyers == {"TEA": 2, "MUG": 2, "HONEY": 1}
    assert pairs == {
        ("TEA", "MUG"): 2,
        ("MUG", "TEA"): 2,
        ("TEA", "HONEY"): 1,
        ("HONEY", "TEA"): 1,
        ("MUG", "HONEY"): 1,
        ("HONEY", "MUG"): 1,
    }


def test_replays_and_duplicates_change_nothing(client, api):
    ada = api.create_customer(name="Ada Lind")
    buy(api, ada["id"], "TEA", "MUG")
    buy(api, ada["id"], "HONEY")
    records = interaction_records()
    assert consume(client, records) == {"batchItemFailures": []}
    before = counts("TEA", "MUG", "HONEY")
    duplicated = [copy.deepcopy(r) for r in records] + records
    assert consume(client, duplicated) == {"batchItemFailures": []}
    assert consume(client, list(reversed(records))) == {"batchItemFailures": []}
    assert counts("TEA", "MUG", "HONEY") == before


def test_erasure_removes_the_guards_and_keeps_the_counts(client, api):
    from chalicelib.store.models import BoughtModel

    ada = api.create_customer(name="Ada Lind")
    buy(api, ada["id"], "TEA", "MUG")
    records = interaction_records()
    assert consume(client, records) == {"batchItemFailures": []}
    assert api.delete(f"/customers/{ada['id']}").status == 204
    removed = json.loads(EVENT.read_text().replace("__CUSTOMER_ID__", ada["id"]))
    client.lambda_.invoke("on_customer_change", removed)

    left = {item.sk for item in BoughtModel.query(f"CUSTOMER#{ada['id']}")}
    assert not {sk for sk in left if sk.startswith(("BOUGHT#", "PAIRED#"))}
    assert counts("TEA", "MUG") == ({"TEA": 1, "MUG": 1}, {("TEA", "MUG"): 1, ("MUG", "TEA"): 1})
    assert consume(client, records) == {"batchItemFailures": []}  # a replay after the deletion
    assert counts("TEA", "MUG")[0] == {"TEA": 1, "MUG": 1}


@pytest.mark.dynamodb_local  # DynamoDB's own limit of 100 items a transaction
def test_a_customer_of_120_skus_is_counted_in_chunks_within_the_transaction_limit_once(client, api):
    from chalicelib.store.models import BoughtModel

    ada = api.create_customer(name="Ada Lind")
    skus = [f"SKU-{i:03d}" for i in range(120)]
    # 117 SKUs counted by earlier batches (their guards, written directly: counting their
    # 13,572 pairs through the consumer would take a minute), then one purchase of 3 more.
    with BoughtModel.batch_write() as batch:
        for sku in skus[:117]:
            batch.save(BoughtModel(f"CUSTOMER#{ada['id']}", f"BOUGHT#{sku}"))
    buy(api, ada["id"], *skus[117:])
    records = interaction_records()
    assert consume(client, records) == {"batchItemFailures": []}

    repository = CoPurchaseRepository("eu-north-1")
    assert repository.buyers(skus[117:]) == dict.fromkeys(skus[117:], 1)
    for n, sku in enumerate(skus[117:]):  # paired once, both ways, with every SKU bought before
        pairs, more = repository.pairs(sku, 1, 200, None)
        assert (sorted(pairs), more) == ([(other, 1) for other in skus[: 117 + n] + skus[118 + n :]], None)
    pairs, more = repository.pairs(skus[0], 1, 200, None)
    assert (sorted(pairs), more) == ([(sku, 1) for sku in skus[117:]], None)
    chunks = {
        item.sk for item in BoughtModel.query(f"CUSTOMER#{ada['id']}", BoughtModel.sk.startswith("PAIRED#"))
    }
    # 117, 118 and 119 partners: 48 + 48 in chunks, the rest with the buyer count.
    assert chunks == {f"PAIRED#{sku}#{c}" for sku in skus[117:] for c in (0, 1)}

    assert consume(client, records) == {"batchItemFailures": []}  # redelivered: nothing twice
    assert repository.buyers(skus[117:]) == dict.fromkeys(skus[117:], 1)
    assert repository.pairs(skus[0], 2, 200, None) == ([], None)
