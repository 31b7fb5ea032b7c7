"""The local event pump against in-process moto, with a small Chalice app of its own."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import boto3
import pytest
from chalice import Chalice, Cron
from moto import mock_aws

from chalicelib.local.pump import EventPump

REGION = "eu-north-1"


@pytest.fixture(scope="module", autouse=True)
def aws():
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        with mock_aws():
            yield


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_table(name: str) -> str:
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def _put(table: str, *keys: str, **extra: dict) -> None:
    dynamodb = boto3.client("dynamodb")
    for key in keys:
        dynamodb.put_item(TableName=table, Item={"k": {"S": key}, **extra})


def _keys(records: list[dict]) -> list[str]:
    return [record["dynamodb"]["Keys"]["k"]["S"] for record in records]


def _stream_app(
    table: str,
    calls: list[list[dict]],
    behaviour: Callable[[list[dict]], dict | None] = lambda records: None,
    contexts: list | None = None,
    **options,
) -> Chalice:
    app = Chalice(app_name="pumptest")
    placeholder = f"arn:aws:dynamodb:{REGION}:000000000000:table/{table}/stream/local"

    options = {"batch_size": 10, "starting_position": "TRIM_HORIZON", **options}

    @app.on_dynamodb_record(stream_arn=placeholder, **options)
    def on_items(event):
        records = event.to_dict()["Records"]
        calls.append(records)
        if contexts is not None:
            contexts.append(event.context)
        return behaviour(records)

    return app


def _fail_keys(*keys: str) -> Callable[[list[dict]], dict]:
    def behaviour(records: list[dict]) -> dict:
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records if _keys([r])[0] in keys
            ]
        }

    return behaviour


def test_stream_records_arrive_in_lambdas_shape():
    table = _name("items")
    stream_arn = _create_table(table)
    calls: list[list[dict]] = []
    contexts: list = []
    app = _stream_app(table, calls, contexts=contexts)
    _put(table, "a", blob={"B": b"\x00\x01"})
    boto3.client("dynamodb").delete_item(TableName=table, Key={"k": {"S": "a"}})

    EventPump(app).drain()

    [records] = calls
    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]
    insert = records[0]
    assert insert["eventSourceARN"] == stream_arn
    assert insert["eventSource"] == "aws:dynamodb"
    assert insert["awsRegion"] == REGION
    assert insert["eventID"] and insert["eventVersion"]
    assert isinstance(insert["dynamodb"]["ApproximateCreationDateTime"], int | float)
    assert insert["dynamodb"]["NewImage"]["blob"] == {"B": "AAE="}
    assert insert["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert {"SequenceNumber", "SizeBytes", "Keys"} <= insert["dynamodb"].keys()
    assert records[1]["dynamodb"]["OldImage"]["k"] == {"S": "a"}
    json.dumps({"Records": records})  # what Lambda delivers is JSON
    [context] = contexts
    assert context.function_name == "pumptest-local-on_items"
    assert context.invoked_function_arn.endswith(":function:pumptest-local-on_items")
    assert context.aws_request_id and context.memory_limit_in_mb > 0
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


def test_a_reported_failure_is_retried_from_that_record_and_earlier_ones_are_not_redelivered():
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []

    def fail_c_once(records: list[dict]) -> dict | None:
        return _fail_keys("c")(records) if len(calls) == 1 else None

    app = _stream_app(table, calls, fail_c_once)
    _put(table, "a", "b", "c", "d", "e")

    EventPump(app).drain()

    assert [_keys(records) for records in calls] == [["a", "b", "c", "d", "e"], ["c", "d", "e"]]


def test_a_record_that_keeps_failing_is_skipped_after_three_attempts_and_reported():
    table = _name("items")
    stream_arn = _create_table(table)
    calls: list[list[dict]] = []
    reported: list[tuple[str, dict]] = []
    app = _stream_app(table, calls, _fail_keys("b"))
    _put(table, "a", "b", "c")
    pump = EventPump(app, on_failure=lambda name, record: reported.append((name, record)))

    pump.drain()
    _put(table, "d")
    pump.drain()

    assert [_keys(records) for records in calls] == [["a", "b", "c"], ["b", "c"], ["b", "c"], ["d"]]
    [(function_name, record)] = reported
    assert function_name == "pumptest-local-on_items"
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    info = record["DDBStreamBatchInfo"]
    assert info["streamArn"] == stream_arn
    assert info["batchSize"] == 2
    assert info["startSequenceNumber"] == calls[1][0]["dynamodb"]["SequenceNumber"]
    assert info["endSequenceNumber"] == calls[1][1]["dynamodb"]["SequenceNumber"]


def test_a_raising_handler_has_its_batch_bisected_until_the_bad_record_is_isolated_and_skipped():
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []
    reported: list[dict] = []

    def poison(records: list[dict]) -> None:
        if "c" in _keys(records):
            raise ValueError("poison record")

    app = _stream_app(table, calls, poison, batch_size=4)
    _put(table, "a", "b", "c", "d")

    EventPump(app, on_failure=lambda name, record: reported.append(record)).drain()

    assert [_keys(records) for records in calls] == [
        ["a", "b", "c", "d"],
        ["a", "b"],
        ["c", "d"],
        ["c"],
        ["c"],
        ["c"],
        ["d"],
    ]
    [record] = reported
    assert record["DDBStreamBatchInfo"]["batchSize"] == 1


def test_latest_starts_with_the_records_written_after_the_pump_first_looks():
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []
    app = _stream_app(table, calls, starting_position="LATEST")
    _put(table, "before")
    pump = EventPump(app)

    pump.drain()
    _put(table, "after")
    pump.drain()

    assert [_keys(records) for records in calls] == [["after"]]


def _queue_arn(url: str) -> str:
    attributes = boto3.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attributes["Attributes"]["QueueArn"]


def _queues(visibility_timeout: int = 0, max_receive_count: int = 2) -> tuple[str, str, str]:
    """(queue name, queue URL, DLQ URL)."""
    sqs = boto3.client("sqs")
    name = _name("jobs")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = _queue_arn(dlq_url)
    url = sqs.create_queue(
        QueueName=name,
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}
            ),
        },
    )["QueueUrl"]
    return name, url, dlq_url


def _queue_app(queue: str, calls: list[list[dict]], behaviour=lambda records: None) -> Chalice:
    app = Chalice(app_name="pumptest")

    @app.on_sqs_message(queue=queue, batch_size=10)
    def on_jobs(event):
        records = event.to_dict()["Records"]
        calls.append(records)
        return behaviour(records)

    return app


def _bodies(url: str) -> list[str]:
    messages = boto3.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return sorted(message["Body"] for message in messages)


def test_sqs_messages_arrive_in_lambdas_shape_and_handled_ones_are_deleted():
    name, url, dlq_url = _queues()
    sqs = boto3.client("sqs")
    queue_arn = _queue_arn(url)
    sqs.send_message(
        QueueUrl=url,
        MessageBody="one",
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "x"}},
    )
    sqs.send_message(QueueUrl=url, MessageBody="two")
    calls: list[list[dict]] = []

    EventPump(_queue_app(name, calls)).drain()

    [records] = calls
    assert sorted(r["body"] for r in records) == ["one", "two"]
    one = next(r for r in records if r["body"] == "one")
    assert one["messageId"] and one["receiptHandle"] and one["md5OfBody"]
    assert one["eventSource"] == "aws:sqs"
    assert one["eventSourceARN"] == queue_arn
    assert one["awsRegion"] == REGION
    assert one["attributes"]["ApproximateReceiveCount"] == "1"
    assert "SentTimestamp" in one["attributes"]
    assert one["messageAttributes"]["kind"]["stringValue"] == "x"
    assert one["messageAttributes"]["kind"]["dataType"] == "String"
    assert _bodies(url) == [] and _bodies(dlq_url) == []


def test_a_reported_message_failure_is_redelivered_and_then_lands_in_the_dlq():
    name, url, dlq_url = _queues(max_receive_count=2)
    for body in ("ok-1", "bad", "ok-2"):
        boto3.client("sqs").send_message(QueueUrl=url, MessageBody=body)
    calls: list[list[dict]] = []

    def fail_bad(records: list[dict]) -> dict:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in records if r["body"] == "bad"]
        }

    EventPump(_queue_app(name, calls, fail_bad)).drain()

    deliveries = [
        (r["body"], r["attributes"]["ApproximateReceiveCount"]) for records in calls for r in records
    ]
    assert sorted(deliveries) == [("bad", "1"), ("bad", "2"), ("ok-1", "1"), ("ok-2", "1")]
    assert _bodies(dlq_url) == ["bad"]
    assert _bodies(url) == []


def test_a_raising_sqs_handler_deletes_nothing_so_the_batch_is_redelivered():
    name, url, dlq_url = _queues(max_receive_count=2)
    boto3.client("sqs").send_message(QueueUrl=url, MessageBody="boom")
    calls: list[list[dict]] = []

    def explode(records: list[dict]) -> None:
        raise RuntimeError("handler bug")

    pump = EventPump(_queue_app(name, calls, explode))
    pump.drain()

    assert [r["attributes"]["ApproximateReceiveCount"] for records in calls for r in records] == ["1", "2"]
    assert _bodies(dlq_url) == ["boom"]


def _schedule_app(events: list) -> Chalice:
    app = Chalice(app_name="pumptest")

    @app.schedule("rate(1 minute)")
    def every_minute(event):
        events.append(("every_minute", event.to_dict(), event.context))

    @app.schedule(Cron(0, 3, "*", "*", "?", "*"))
    def nightly(event):
        events.append(("nightly", event.to_dict(), event.context))

    return app


def test_trigger_runs_a_schedule_now_with_a_scheduled_event():
    events: list = []
    pump = EventPump(_schedule_app(events))

    pump.trigger("every_minute")

    [(_, event, context)] = events
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["region"] == REGION
    assert event["resources"] == [f"arn:aws:events:{REGION}:123456789012:rule/pumptest-local-every_minute"]
    assert event["detail"] == {} and event["id"] and event["time"].endswith("Z")
    assert context.function_name == "pumptest-local-every_minute"
    with pytest.raises(KeyError):
        pump.trigger("no_such_schedule")


def test_schedules_run_at_their_rate_and_cron_once_a_day():
    events: list = []
    now = [1000.0]
    pump = EventPump(_schedule_app(events), clock=lambda: now[0])

    pump.poll_once()
    now[0] += 59
    pump.poll_once()
    assert events == []
    now[0] += 1
    pump.poll_once()
    pump.poll_once()
    assert [name for name, *_ in events] == ["every_minute"]
    now[0] += 24 * 3600
    pump.poll_once()
    assert sorted(name for name, *_ in events) == ["every_minute", "every_minute", "nightly"]


def test_the_background_pump_waits_for_its_table_and_survives_handler_errors():
    table = _name("items")
    calls: list[list[dict]] = []

    def poison(records: list[dict]) -> None:
        if "poison" in _keys(records):
            raise ValueError("poison record")

    pump = EventPump(_stream_app(table, calls, poison), poll_interval=0.02).start()
    try:
        assert not pump.poll_once()  # no table yet: nothing to do, nothing broken
        _create_table(table)
        _put(table, "poison", "good")
        deadline = time.monotonic() + 10
        while not calls or _keys(calls[-1]) != ["good"]:
            assert time.monotonic() < deadline, calls
            time.sleep(0.02)
        assert pump.running
    finally:
        pump.stop()
    assert not pump.running
