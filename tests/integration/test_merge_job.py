"""The merge job end to end: a merge's start (POST /customers/{survivor}/merge), then the
customers stream queues the job, the jobs queue runs its steps, and the
interactions stream applies what moved. Everything of the merged customer ends with the
survivor: loyalty and habits equal the aggregates of the union computed from scratch, the
co-purchase counts are those of one buyer, one case per complaint, the audit trail moved."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from chalicelib.config import get_settings
from chalicelib.domain.loyalty.aggregates import from_scratch
from chalicelib.domain.loyalty.contributions import contribution_of
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from tests.functional.conftest import Api, assert_problem, bulk_interactions
from tests.functional.merge_helpers import start
from tests.integration.streams import stream_records

T0 = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _at(days: int) -> str:
    return (T0 + timedelta(days=days)).isoformat()


def _line(sku: str, price: str = "10.00", quantity: int = 1) -> dict:
    return {"sku": sku, "name": f"Vara {sku}", "quantity": quantity, "unit_price": price}


def _post(api: Api, customer_id: str, body: dict) -> dict:
    reply = api.post(f"/customers/{customer_id}/interactions", body)
    assert reply.status == 201, reply.json
    return reply.json


def _purchase(api: Api, customer_id: str, days: int, *lines: dict) -> dict:
    body = {
        "type": "purchase",
        "channel": "store",
        "currency": "SEK",
        "items": list(lines),
        "occurred_at": _at(days),
    }
    return _post(api, customer_id, body)


def _return(api: Api, customer_id: str, purchase: dict, days: int, *lines: dict) -> dict:
    body = {
        "type": "return",
        "channel": "store",
        "currency": "SEK",
        "purchase_id": purchase["id"],
        "items": list(lines),
        "occurred_at": _at(days),
    }
    return _post(api, customer_id, body)


def _partition(customer_id: str) -> list[str]:
    from chalicelib.store.models.merges import PartitionItemModel

    return [i.sk for i in PartitionItemModel.query(f"CUSTOMER#{customer_id}", consistent_read=True)]


def _interactions(customer_id: str) -> list[dict]:
    table = boto3.resource("dynamodb").Table(get_settings().interactions_table)
    return table.query(
        KeyConditionExpression="customer_id = :c",
        ExpressionAttributeValues={":c": customer_id},
        ConsistentRead=True,
    )["Items"]


def _merge(merge_id: str):
    from chalicelib import wiring

    return wiring.merge_moves().get(merge_id)


def _co_purchase_counts() -> tuple[dict[str, int], dict[tuple[str, str], int]]:
    from chalicelib.store.models import BuyersModel, PairModel

    table = boto3.resource("dynamodb").Table(get_settings().customers_table)
    items = [i for i in _scan(table) if str(i["pk"]).startswith("PRODUCT#")]
    buyers = {i["pk"][8:]: int(i["buyers"]) for i in items if i["sk"] == "BUYERS"}
    pairs = {(i["pk"][8:], i["sk"][5:]): int(i["co_purchases"]) for i in items if i["sk"].startswith("PAIR#")}
    assert BuyersModel and PairModel
    return buyers, {k: v for k, v in pairs.items() if v}


def _scan(table) -> list[dict]:
    items, kwargs = [], {}
    while True:
        page = table.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _two_customers_with_everything(api: Api, pump) -> tuple[str, str, dict]:
    """A survivor and a merged customer with purchases (a SKU both bought), returns on both
    sides, a complaint with its case on the merged side, segment memberships, an export."""
    survivor = api.create_customer(name="Maria Cruz", email="maria.cruz@example.ph", tags=["vip"])["id"]
    merged = api.create_customer(name="Cruz Maria", email="mcruz@example.ph", tags=["vip"])["id"]
    own = _purchase(api, survivor, 0, _line("KAFFE", "59.90", 2), _line("TERMOS"))
    _return(api, survivor, own, 3, _line("KAFFE", "59.90"))
    theirs = _purchase(api, merged, 5, _line("KAFFE", "59.90"), _line("KOPP", "25.00"))
    _purchase(api, merged, 30, _line("KAFFE", "59.90"), _line("FILTER", "19.00", 3))
    _return(api, merged, theirs, 8, _line("KOPP", "25.00"))
    _post(
        api, merged, {"type": "complaint", "channel": "phone", "severity": "high", "subject": "Trasig kopp"}
    )
    _post(api, merged, {"type": "inquiry", "channel": "email", "note": "Öppettider?"})
    segment = api.post("/segments", {"name": "VIP", "rules": {"tags_any": ["vip"]}})
    assert segment.status == 201, segment.json
    pump.drain()
    assert api.get(f"/segments/{segment.json['id']}").json["member_count"] == 2
    [case] = api.get(f"/customers/{merged}/cases").json["items"]
    return survivor, merged, {"segment": segment.json, "case": case}


def test_a_merge_moves_everything_to_the_survivor_and_loyalty_is_that_of_the_union(api, pump):
    survivor, merged, context = _two_customers_with_everything(api, pump)
    theirs = {i["id"]: i for i in api.walk(f"/customers/{merged}/interactions", 50)}
    assert len(theirs) >= 6  # with the case's acknowledgement message
    audited = [sk for sk in _partition(merged) if sk.startswith("AUDIT#")]  # the profile's, the case's
    merge_id = start(api, survivor, merged)
    pump.drain()  # the job (queued by the customers stream), then the moves' stream records

    merge = _merge(merge_id)
    assert (merge.status, merge.completed_at is not None) == ("completed", True)
    assert merge.counts == {"interactions": len(theirs), "cases": 1, "audit": len(audited)}

    # The timeline: the same ids, times and content, now the survivor's, marked merged_from.
    timeline = {i["id"]: i for i in api.walk(f"/customers/{survivor}/interactions", 50)}
    for interaction_id, before in theirs.items():
        moved = timeline[interaction_id]
        assert moved == {**before, "customer_id": survivor, "merged_from": merged}
    assert {i["merged_from"] for i in timeline.values() if i["id"] not in theirs} == {None}
    assert _interactions(merged) == []

    # Loyalty and habits: as if every purchase and return had always been the survivor's.
    from chalicelib import wiring

    union = [c for c in (contribution_of(i) for i in _interactions(survivor)) if c is not None]
    stored = wiring.loyalty_repository().with_all_habits(survivor)
    assert stored.aggregates.to_dict() == from_scratch(union).to_dict()
    assert stored.aggregates.purchase_count == 3 and stored.aggregates.return_count == 2

    # Co-purchases: one buyer of KAFFE (both bought it), each pair of the union counted once.
    buyers, pairs = _co_purchase_counts()
    skus = {"KAFFE", "TERMOS", "KOPP", "FILTER"}
    assert buyers == dict.fromkeys(skus, 1)
    assert pairs == {(a, b): 1 for a in skus for b in skus if a != b}

    # One case, moved; its history is where it was.
    [case] = api.get(f"/customers/{survivor}/cases").json["items"]
    assert case["id"] == context["case"]["id"] and case["customer_id"] == survivor
    assert api.get(f"/cases/{case['id']}/history").status == 200

    # The audit trail: the merged customer's creation is under the survivor now.
    from chalicelib.store.models import AuditModel

    entries = list(AuditModel.query(f"CUSTOMER#{survivor}", AuditModel.sk.startswith("AUDIT#")))
    assert {e.entity_id for e in entries if e.action == "create"} >= {survivor, merged}
    assert set(audited) <= {e.sk for e in entries}

    # Segments: the merged customer left, the survivor is still a member, counted once.
    segment = api.get(f"/segments/{context['segment']['id']}").json
    assert segment["member_count"] == 1
    assert {m["customer_id"] for m in api.walk(f"/segments/{segment['id']}/members", 10)} == {survivor}

    # What stays under the merged id is its alias; both markers went with the completion.
    assert _partition(merged) == ["MERGED"]
    assert "MERGE_RUNNING" not in _partition(survivor)


def test_the_merged_customers_late_stream_records_are_skipped_not_failed(api, chalice_app, pump):
    survivor = api.create_customer(name="Jyrki Mäkelä")["id"]
    merged = api.create_customer(name="Jyrki Makela")["id"]
    _purchase(api, merged, 1, _line("SAUNA", "30.00"))
    pump.drain()
    start(api, survivor, merged)
    pump.drain()

    removals = [
        r
        for r in stream_records(get_settings().interactions_table)
        if r["eventName"] == "REMOVE" and r["dynamodb"]["Keys"]["customer_id"]["S"] == merged
    ]
    assert removals
    context = LambdaContext("update_loyalty", 1024, "arn:aws:lambda:eu-north-1:1:function:x", 60_000)
    assert chalice_app.handler_map["update_loyalty"]({"Records": removals}, context) == {
        "batchItemFailures": []
    }
    assert api.get(f"/customers/{survivor}/loyalty").json["frequency"] == 1


def test_a_return_to_the_survivor_finds_its_purchase_still_under_the_merged_id(api, pump):
    survivor = api.create_customer(name="Ana Horvat")["id"]
    merged = api.create_customer(name="Ana Horvát")["id"]
    purchase = _purchase(api, merged, 1, _line("CAJ", "4.50", 3))
    pump.drain()
    merge_id = start(api, survivor, merged)  # the job has not run yet: the purchase is still there

    returned = _return(api, survivor, purchase, 2, _line("CAJ", "4.50", 2))
    assert returned["customer_id"] == survivor and returned["purchase_id"] == purchase["id"]
    pump.drain()

    assert _merge(merge_id).status == "completed"
    from chalicelib import wiring

    moved = wiring.interaction_service().get(survivor, purchase["id"])
    assert moved.returned == {"CAJ": 2} and moved.merged_from == merged
    # The rest of the purchase can be returned; more than that cannot.
    assert (
        api.post(
            f"/customers/{survivor}/interactions",
            {
                "type": "return",
                "channel": "web",
                "currency": "SEK",
                "purchase_id": purchase["id"],
                "items": [_line("CAJ", "4.50", 2)],
            },
        ).status
        == 409
    )


# The job's messages delivered by hand, as Lambda would, to interrupt and redeliver them.


def _context(seconds: float = 60) -> LambdaContext:
    return LambdaContext(
        "run_jobs", 1024, "arn:aws:lambda:eu-north-1:123456789012:function:run_jobs", int(seconds * 1000)
    )


def _jobs_queue() -> tuple[object, str, str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().jobs_queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _message(body: dict, receives: int = 1) -> dict:
    sqs, url, arn = _jobs_queue()
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    [message] = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"]).get("Messages", [])
    record = lambda_sqs_record(message, arn)
    record["attributes"]["ApproximateReceiveCount"] = str(receives)
    return record


def _deliver(chalice_app, record: dict, seconds: float = 60) -> bool:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    try:
        reply = chalice_app.handler_map["run_jobs"]({"Records": [record]}, _context(seconds))
    except BatchProcessingError:
        return False
    return not reply["batchItemFailures"]


def _snapshot(*customer_ids: str) -> dict:
    from chalicelib.store.models.merges import PartitionItemModel

    return {
        cid: (
            sorted((i["id"], i.get("merged_from"), int(i["version"])) for i in _interactions(cid)),
            sorted(i.sk for i in PartitionItemModel.query(f"CUSTOMER#{cid}", consistent_read=True)),
        )
        for cid in customer_ids
    }


def test_a_merge_interrupted_midway_resumes_when_redelivered_with_exact_counts(api, chalice_app, monkeypatch):
    from chalicelib.store.merge_moves import MergeMoves

    survivor = api.create_customer(name="Pirkko Järvinen")["id"]
    merged = api.create_customer(name="Pirkko Jarvinen")["id"]
    bulk_interactions(merged, 60)
    merge_id = start(api, survivor, merged)
    record = _message({"merge_id": merge_id})

    original = MergeMoves.move_audit

    def crash(self, merge):
        raise ConnectionError("the invocation died here")

    monkeypatch.setattr(MergeMoves, "move_audit", crash)
    assert not _deliver(chalice_app, record)
    merge = _merge(merge_id)
    assert (merge.status, merge.step, merge.counts["interactions"]) == ("running", "audit", 60)

    monkeypatch.setattr(MergeMoves, "move_audit", original)
    record["attributes"]["ApproximateReceiveCount"] = "2"  # SQS delivers it again
    assert _deliver(chalice_app, record)
    merge = _merge(merge_id)
    assert merge.status == "completed"
    assert merge.counts == {"interactions": 60, "cases": 0, "audit": 1}
    assert len(_interactions(survivor)) == 60 and _interactions(merged) == []

    # A rerun of the completed merge (the message again, or a late duplicate) changes nothing.
    before = _snapshot(survivor, merged)
    assert _deliver(chalice_app, _message({"merge_id": merge_id}))
    assert _snapshot(survivor, merged) == before and _merge(merge_id).counts == merge.counts


def test_a_merge_out_of_time_hands_itself_on(api, chalice_app):
    survivor = api.create_customer(name="Matti Virtanen")["id"]
    merged = api.create_customer(name="Matti Virtanén")["id"]
    bulk_interactions(merged, 60)
    merge_id = start(api, survivor, merged)

    assert _deliver(chalice_app, _message({"merge_id": merge_id}), seconds=0.001)
    assert _merge(merge_id).status == "running"
    assert 0 < len(_interactions(survivor)) < 60
    sqs, url, arn = _jobs_queue()
    [handed_on] = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    assert json.loads(handed_on["Body"]) == {"merge_id": merge_id}
    assert _deliver(chalice_app, lambda_sqs_record(handed_on, arn))
    assert _merge(merge_id).status == "completed" and _merge(merge_id).counts["interactions"] == 60


@pytest.mark.dynamodb_local
def test_two_runs_of_one_merge_at_once_end_in_the_same_state_with_exact_counts(api):
    from concurrent.futures import ThreadPoolExecutor

    from chalicelib import wiring
    from chalicelib.domain.clock import Deadline

    survivor = api.create_customer(name="Liisa Mäki")["id"]
    merged = api.create_customer(name="Liisa Maki")["id"]
    bulk_interactions(merged, 120)
    merge_id = start(api, survivor, merged)
    job = wiring.merge_job()
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(lambda _: job.run(merge_id, Deadline(120)), range(2)))
    assert set(outcomes) <= {"completed", "skipped"}
    merge = _merge(merge_id)
    assert merge.status == "completed" and merge.counts["interactions"] == 120
    moved = _interactions(survivor)
    assert len(moved) == 120 and {i["merged_from"] for i in moved} == {merged}
    assert _interactions(merged) == []


def test_a_customer_being_merged_cannot_be_deleted_until_the_merge_completes(api, pump):
    survivor = api.create_customer(name="Åsa Öberg")["id"]
    merged = api.create_customer(name="Asa Oberg")["id"]
    merge_id = start(api, survivor, merged)
    problem = assert_problem(api.delete(f"/customers/{survivor}"), 409)
    assert merge_id in problem["detail"]
    pump.drain()
    assert api.delete(f"/customers/{survivor}").status == 204


def test_erasing_the_survivor_erases_the_ids_merged_into_it(api, pump):
    first = api.create_customer(name="Špela Novak", email="spela@example.si")["id"]
    second = api.create_customer(name="Spela Novak")["id"]
    survivor = api.create_customer(name="Špela Nováková")["id"]
    _purchase(api, first, 1, _line("MED", "8.00"))
    start(api, second, first)
    pump.drain()
    start(api, survivor, second)  # a chain: first → second → survivor
    pump.drain()
    from chalicelib import wiring

    assert sorted(wiring.merge_moves().merged_into(survivor)) == sorted([first, second])
    assert _partition(first) == ["MERGED"] and _partition(second) == ["MERGED"]

    assert api.post(f"/customers/{survivor}/erase").status == 202
    pump.drain()
    for customer_id in (first, second):
        assert _partition(customer_id) == [] and _interactions(customer_id) == []
        assert_problem(api.get(f"/customers/{customer_id}"), 404)
        assert not wiring.merge_moves().has_alias(customer_id)
    assert _interactions(survivor) == []
    assert [sk for sk in _partition(survivor) if sk.startswith("ALIAS#")] == []


def test_an_erasure_asked_for_during_a_merge_waits_for_it_then_erases_what_moved(
    api, chalice_app, monkeypatch
):
    from chalicelib.services import jobs

    survivor = api.create_customer(name="Ingegärd Pålsson")["id"]
    merged = api.create_customer(name="Ingegard Palsson")["id"]
    _purchase(api, merged, 1, _line("KAFFE"))
    merge_id = start(api, survivor, merged)
    job = api.post(f"/customers/{survivor}/erase").json
    monkeypatch.setattr(jobs, "MERGE_WAIT_S", 0)

    assert _deliver(chalice_app, _message({"job_id": job["id"]}))
    assert api.get(f"/jobs/{job['id']}").json["status"] == "running"
    assert api.get(f"/customers/{survivor}").status == 200  # nothing erased yet
    sqs, url, arn = _jobs_queue()
    [again] = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])["Messages"]
    assert json.loads(again["Body"]) == {"job_id": job["id"]}

    assert _deliver(chalice_app, _message({"merge_id": merge_id}))
    assert _deliver(chalice_app, lambda_sqs_record(again, arn))
    assert api.get(f"/jobs/{job['id']}").json["status"] == "completed"
    assert _interactions(survivor) == [] and _partition(merged) == []


def _events_taken_off_the_queue() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    events = []
    while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
        "Messages"
    ):
        events += [json.loads(m["Body"]) for m in got]
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return events


def test_moved_interactions_publish_no_interaction_created(api, pump):
    survivor = api.create_customer(name="Juan dela Cruz")["id"]
    merged = api.create_customer(name="Juan Dela Cruz")["id"]
    _post(api, merged, {"type": "inquiry", "channel": "chat", "note": "Kumusta?"})
    pump.drain()
    assert "interaction.created" in {e["type"] for e in _events_taken_off_the_queue()}
    start(api, survivor, merged)
    pump.drain()
    assert "interaction.created" not in {e["type"] for e in _events_taken_off_the_queue()}


def test_what_points_at_the_merged_customer_points_at_the_survivor_after_the_merge(api, pump):
    from chalicelib import wiring
    from chalicelib.domain.identities import Identity
    from chalicelib.domain.webhook_sources import Guard, order_guard
    from chalicelib.store.models import IdempotencyPointerModel
    from chalicelib.store.models.merges import NotDuplicateModel

    survivor = api.create_customer(name="Aino Korhonen")["id"]
    merged = api.create_customer(name="Aino Korhonén")["id"]
    other = api.create_customer(name="Aino Koskinen")["id"]
    purchase = _purchase(api, merged, 1, _line("KAHVI"))
    wiring.identity_repository().link(Identity(merged, "https://idp.example", "sub-aino", T0, "sign-up"))
    wiring.webhook_source_repository().claim(
        Guard("src_shop", order_guard("1001"), merged, purchase["id"], T0)
    )
    keyed = api.post(
        f"/customers/{merged}/interactions",
        {"type": "visit", "channel": "store"},
        headers={"Idempotency-Key": "kaynti-1"},
    )
    assert keyed.status == 201
    recorded = {"recorded_at": T0.isoformat(), "recorded_by": "staff-1"}
    NotDuplicateModel(f"CUSTOMER#{merged}", f"NOT_DUPLICATE#{other}", other_id=other, **recorded).save()
    NotDuplicateModel(f"CUSTOMER#{other}", f"NOT_DUPLICATE#{merged}", other_id=merged, **recorded).save()
    pointers = [sk for sk in _partition(merged) if sk.startswith("IDEMPOTENCY#")]
    assert pointers
    pump.drain()

    start(api, survivor, merged)
    pump.drain()

    assert wiring.identity_repository().customer_for("https://idp.example", "sub-aino") == survivor
    assert [i.subject for i in wiring.identity_repository().of_customer(survivor)] == ["sub-aino"]
    guard = wiring.webhook_source_repository().guard("src_shop", order_guard("1001"))
    assert (guard.customer_id, guard.interaction_id) == (survivor, purchase["id"])
    assert set(pointers) <= {
        i.sk
        for i in IdempotencyPointerModel.query(
            f"CUSTOMER#{survivor}", IdempotencyPointerModel.sk.startswith("IDEMPOTENCY#")
        )
    }
    assert f"NOT_DUPLICATE#{other}" in _partition(survivor)
    assert f"NOT_DUPLICATE#{survivor}" in _partition(other)
    assert _partition(merged) == ["MERGED"]
