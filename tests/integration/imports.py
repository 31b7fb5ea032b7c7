"""What the import tests share: an import requested over HTTP, its file put into the imports
bucket (whose ObjectCreated event moto's S3 sends to the uploads queue), and the consumers
(`start_imports`, `run_imports`) given the queues' messages as Lambda delivers them."""

from __future__ import annotations

import json

import boto3

from chalicelib.config import get_settings
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from tests.functional.conftest import Api


def _context(name: str, seconds: float = 120) -> LambdaContext:
    return LambdaContext(
        name, 1024, f"arn:aws:lambda:eu-north-1:123456789012:function:{name}", int(seconds * 1000)
    )


def _queue(name: str) -> tuple[object, str, str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _receive(name: str) -> list[dict]:
    sqs, url, arn = _queue(name)
    records = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return records
        records += [lambda_sqs_record(m, arn) for m in messages]


def _deliver(
    chalice_app, function: str, queue: str, record: dict, *, delete: bool = True, seconds: float = 120
) -> bool:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    try:
        reply = chalice_app.handler_map[function]({"Records": [record]}, _context(function, seconds))
    except BatchProcessingError:
        return False
    ok = not reply["batchItemFailures"]
    if ok and delete:
        sqs, url, _ = _queue(queue)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return ok


def _uploads() -> str:
    return get_settings().import_uploads_queue_name


def _chunks() -> str:
    return get_settings().imports_queue_name


def _start(chalice_app) -> None:
    """The uploads queue's messages (S3's events) through `start_imports`."""
    records = _receive(_uploads())
    assert records, "S3 sent no event for the upload"
    for record in records:
        assert _deliver(chalice_app, "start_imports", _uploads(), record)


def _run_all(chalice_app) -> int:
    """Every chunk (and planning) message through `run_imports`, until none is left."""
    delivered = 0
    while records := _receive(_chunks()):
        for record in records:
            assert _deliver(chalice_app, "run_imports", _chunks(), record)
            delivered += 1
    return delivered


def _request(api: Api, **options) -> dict:
    reply = api.post("/imports", {"format": "csv", "kind": "customers", **options})
    assert reply.status == 201, reply.json
    assert reply.headers["location"] == f"/imports/{reply.json['id']}"
    assert reply.json["status"] == "awaiting_upload" and reply.json["upload"]["method"] == "PUT"
    return reply.json


def _put(imp: dict, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=get_settings().imports_bucket, Key=f"imports/{imp['id']}", Body=data)


def _import(api: Api, chalice_app, data: bytes, **options) -> dict:
    imp = _request(api, **options)
    _put(imp, data)
    _start(chalice_app)
    _run_all(chalice_app)
    return api.get(f"/imports/{imp['id']}").json


def _results(api: Api, import_id: str) -> list[dict]:
    reply = api.get(f"/imports/{import_id}/results")
    assert reply.status == 200
    assert reply.content_type.startswith("application/x-ndjson")
    return [json.loads(line) for line in reply.body.decode().splitlines()]


def _counts(imp: dict) -> dict:
    return {k: imp[k] for k in ("status", "rows", "processed", "created", "updated", "skipped", "failed")}


def _customer_count() -> int:
    from chalicelib.store.models import CustomerModel

    return sum(1 for _ in CustomerModel.by_created.query("customers"))
