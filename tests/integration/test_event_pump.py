"""The local event pump against in-process moto, with a small Chalice app of its own."""

from __future__ import annotations

import copy
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from chalice import Chalice, Cron
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from chalicelib.local import pump_streams
from chalicelib.local.dynamodb_local import DynamoDBLocal, why_unavailable
from chalicelib.local.pump import EventPump

REGION = "eu-north-1"


@pytest.fixture(scope="module", autouse=True)
def aws():
    with pytest.MonkeyPatch.context() as env:
        # This module runs its own moto, whatever endpoints the session's fixtures set.
        for name in (
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_DYNAMODB",
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
        ):
            env.delenv(name, raising=False)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        with mock_aws():
            yield


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _create_table(name: str, dynamodb: Any = None) -> str:
    dynamodb = dynamodb or boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    return dynamodb.describe_table(TableName=name)["Table"]["LatestStreamArn"]


def _put(table: str, *keys: str, dynamodb: Any = None, **extra: dict) -> None:
    dynamodb = dynamodb or boto3.client("dynamodb")
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


def test_per_source_threads_consume_every_stream_and_wait_idle_returns_once_all_is_consumed():
    tables = [_name("first"), _name("second")]
    calls: dict[str, list[list[dict]]] = {table: [] for table in tables}
    app = Chalice(app_name="pumptest")
    for table in tables:
        placeholder = f"arn:aws:dynamodb:{REGION}:000000000000:table/{table}/stream/local"

        def handler(event, table=table):
            time.sleep(0.05)  # slower than a poll: wait_idle must not return while it runs
            calls[table].append(event.to_dict()["Records"])

        app.on_dynamodb_record(
            stream_arn=placeholder, batch_size=2, starting_position="TRIM_HORIZON", name=table
        )(handler)
        _create_table(table)
    pump = EventPump(app, poll_interval=0.01).start(per_source=True)
    try:
        assert sorted(thread.name for thread in pump._threads) == sorted(
            [*(f"pump:{table}" for table in tables), "pump:schedules"]
        )
        for table in tables:
            _put(table, "a", "b", "c", "d", "e")

        pump.wait_idle(timeout=20)

        for table in tables:
            assert sorted(key for batch in calls[table] for key in _keys(batch)) == ["a", "b", "c", "d", "e"]
    finally:
        pump.stop()
    assert not pump.running


def test_wait_idle_needs_a_running_pump_and_gives_up_after_its_timeout():
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []
    pump = EventPump(_stream_app(table, calls, lambda records: time.sleep(1.0)), poll_interval=0.01)
    with pytest.raises(RuntimeError, match="running pump"):
        pump.wait_idle()
    pump.start(per_source=True)
    try:
        _put(table, "slow")
        with pytest.raises(TimeoutError):
            pump.wait_idle(timeout=0.3)
        pump.wait_idle(timeout=10)
        assert [_keys(batch) for batch in calls] == [["slow"]]
    finally:
        pump.stop()


# --- Cancelled transactions (moto) -------------------------------------------------------


def _cancelled_transaction(table: str, key: str, dynamodb: Any = None) -> None:
    """A Put that is applied, then a condition that fails: the transaction is cancelled."""
    dynamodb = dynamodb or boto3.client("dynamodb")
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"k": {"S": key}}}},
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"k": {"S": "no-such-item"}},
                        "ConditionExpression": "attribute_exists(k)",
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"


def test_the_pump_keeps_delivering_after_a_cancelled_transaction():
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []
    pump = EventPump(_stream_app(table, calls))
    _put(table, "before")
    pump.drain()

    _cancelled_transaction(table, "cancelled-1")
    _put(table, "after-1")
    pump.drain()
    _cancelled_transaction(table, "cancelled-2")
    _put(table, "after-2", "after-3")
    pump.drain()

    assert [_keys(records) for records in calls] == [["before"], ["after-1"], ["after-2", "after-3"]]


def test_records_written_after_moto_rolls_back_a_transaction_the_pump_was_reading_are_not_lost(caplog):
    # What moto's transact_write_items does, with the pump polling in the middle as the local
    # stack's pump thread can: keep a copy of the table, apply a write, put the copy back.
    backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION]
    table = _name("items")
    _create_table(table)
    calls: list[list[dict]] = []
    reported: list[dict] = []
    app = _stream_app(table, calls, _fail_keys("rolled-back"))
    pump = EventPump(app, on_failure=lambda name, record: reported.append(record))
    _put(table, "before")
    pump.drain()

    saved = copy.deepcopy(backend.tables[table])
    _put(table, "rolled-back")
    pump.poll_once()  # read and failed: waiting to be retried
    backend.tables[table] = saved
    _put(table, "after")  # the rolled-back record's sequence number, again
    with caplog.at_level(logging.WARNING, logger=pump_streams.__name__):
        pump.drain()

    assert [_keys(records) for records in calls] == [["before"], ["rolled-back"], ["after"]]
    assert reported == []  # the record that never happened is not retried either
    assert "rolled back" in caplog.text


# --- Shard lineage, with a streams client whose shards the test controls -------------------

FAKE_STREAM_ARN = f"arn:aws:dynamodb:{REGION}:123456789012:table/fake/stream/2026-01-01T00:00:00.000"


def _error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, operation)


class _FakeStreams:
    """DynamoDB Streams as AWS documents it, with shards the test opens, closes and trims: a
    closed shard's last page has no NextShardIterator, DescribeStream pages through shards,
    reading before the trim horizon is TrimmedDataAccessException. Records all calls."""

    def __init__(self, page_size: int = 100) -> None:
        self.page_size = page_size
        self.shards: dict[str, dict] = {}
        self.calls: list[tuple] = []
        self.fail_next_get_records: str | None = None
        self._sequence = 0

    def add_shard(self, shard_id: str, parent: str | None = None) -> None:
        self.shards[shard_id] = {"parent": parent, "records": [], "closed": False, "trimmed_through": 0}

    def write(self, shard_id: str, *keys: str) -> None:
        for key in keys:
            self._sequence += 1
            self.shards[shard_id]["records"].append(
                {
                    "eventID": uuid.uuid4().hex,
                    "eventName": "INSERT",
                    "eventVersion": "1.1",
                    "eventSource": "aws:dynamodb",
                    "awsRegion": REGION,
                    "dynamodb": {
                        "ApproximateCreationDateTime": datetime.now(UTC),
                        "Keys": {"k": {"S": key}},
                        "SequenceNumber": f"{self._sequence:021d}",
                        "SizeBytes": 10,
                        "StreamViewType": "KEYS_ONLY",
                    },
                }
            )

    def close(self, shard_id: str) -> None:
        self.shards[shard_id]["closed"] = True

    def trim(self, shard_id: str, count: int) -> None:
        shard = self.shards[shard_id]
        gone, shard["records"] = shard["records"][:count], shard["records"][count:]
        shard["trimmed_through"] = int(gone[-1]["dynamodb"]["SequenceNumber"])

    def sequence_number(self, key: str) -> str:
        for shard in self.shards.values():
            for record in shard["records"]:
                if record["dynamodb"]["Keys"]["k"]["S"] == key:
                    return record["dynamodb"]["SequenceNumber"]
        raise KeyError(key)

    def count(self, operation: str, shard_id: str | None = None) -> int:
        return sum(1 for call in self.calls if call[0] == operation and shard_id in (None, call[1]))

    def describe_stream(self, StreamArn: str, ExclusiveStartShardId: str | None = None) -> dict:
        self.calls.append(("DescribeStream", ExclusiveStartShardId))
        ids = list(self.shards)
        start = ids.index(ExclusiveStartShardId) + 1 if ExclusiveStartShardId else 0
        page = ids[start : start + self.page_size]
        description: dict[str, Any] = {
            "StreamArn": StreamArn,
            "Shards": [
                {
                    "ShardId": shard_id,
                    "SequenceNumberRange": {"StartingSequenceNumber": "000000000000000000001"},
                    **(
                        {"ParentShardId": self.shards[shard_id]["parent"]}
                        if self.shards[shard_id]["parent"]
                        else {}
                    ),
                }
                for shard_id in page
            ],
        }
        if start + self.page_size < len(ids):
            description["LastEvaluatedShardId"] = page[-1]
        return {"StreamDescription": description}

    def get_shard_iterator(
        self,
        StreamArn: str,
        ShardId: str,
        ShardIteratorType: str,
        SequenceNumber: str | None = None,
    ) -> dict:
        self.calls.append(("GetShardIterator", ShardId, ShardIteratorType, SequenceNumber))
        if ShardId not in self.shards:
            raise _error("ResourceNotFoundException", "GetShardIterator")
        records = self.shards[ShardId]["records"]
        first = {
            "TRIM_HORIZON": None,
            "LATEST": int(records[-1]["dynamodb"]["SequenceNumber"]) + 1 if records else None,
            "AT_SEQUENCE_NUMBER": int(SequenceNumber or 0),
            "AFTER_SEQUENCE_NUMBER": int(SequenceNumber or 0) + 1,
        }[ShardIteratorType]
        return {"ShardIterator": json.dumps([ShardId, first])}

    def get_records(self, ShardIterator: str, Limit: int = 1000) -> dict:
        shard_id, first = json.loads(ShardIterator)
        self.calls.append(("GetRecords", shard_id))
        if self.fail_next_get_records:
            code, self.fail_next_get_records = self.fail_next_get_records, None
            raise _error(code, "GetRecords")
        if shard_id not in self.shards:
            raise _error("ResourceNotFoundException", "GetRecords")
        shard = self.shards[shard_id]
        if first is not None and first <= shard["trimmed_through"]:
            raise _error("TrimmedDataAccessException", "GetRecords")
        left = [r for r in shard["records"] if first is None or int(r["dynamodb"]["SequenceNumber"]) >= first]
        page = copy.deepcopy(left[:Limit])
        response: dict[str, Any] = {"Records": page}
        if not (shard["closed"] and len(page) == len(left)):
            after = int(page[-1]["dynamodb"]["SequenceNumber"]) + 1 if page else first
            response["NextShardIterator"] = json.dumps([shard_id, after])
        return response


class _FakeDynamoDB:
    def describe_table(self, TableName: str) -> dict:
        return {"Table": {"TableName": TableName, "LatestStreamArn": FAKE_STREAM_ARN}}


def _fake_pump(streams: _FakeStreams, calls: list[list[dict]], behaviour=lambda records: None, **options):
    app = _stream_app("fake", calls, behaviour, **options)
    return EventPump(app, clients={"dynamodb": _FakeDynamoDB(), "dynamodbstreams": streams})


def test_a_closed_parent_shard_is_processed_to_its_end_before_its_child_and_then_left_alone():
    streams = _FakeStreams()
    streams.add_shard("shardId-child", parent="shardId-parent")  # listed first
    streams.add_shard("shardId-parent")
    streams.write("shardId-parent", "p1", "p2", "p3")
    streams.close("shardId-parent")
    streams.write("shardId-child", "c1", "c2")
    calls: list[list[dict]] = []
    failed: list[bool] = []

    def fail_p2_once(records: list[dict]) -> dict | None:
        if "p2" in _keys(records) and not failed:
            failed.append(True)
            return _fail_keys("p2")(records)
        return None

    pump = _fake_pump(streams, calls, fail_p2_once, batch_size=2)
    pump.drain()

    assert [_keys(records) for records in calls] == [["p1", "p2"], ["p2", "p3"], ["c1", "c2"]]
    streams.calls.clear()
    pump.poll_once()
    assert streams.count("GetShardIterator", "shardId-parent") == 0
    assert streams.count("GetShardIterator", "shardId-child") == 1


def test_a_child_shard_that_appears_when_its_parent_closes_is_read_from_its_start_by_a_latest_consumer():
    streams = _FakeStreams(page_size=1)
    streams.add_shard("shardId-1")
    streams.write("shardId-1", "old")
    calls: list[list[dict]] = []
    pump = _fake_pump(streams, calls, starting_position="LATEST")
    pump.drain()
    streams.write("shardId-1", "a1")
    pump.drain()

    streams.write("shardId-1", "a2")
    streams.close("shardId-1")
    streams.add_shard("shardId-2", parent="shardId-1")
    streams.write("shardId-2", "b1", "b2")
    pump.drain()  # within the listing interval: the closing itself makes the pump look

    assert [_keys(records) for records in calls] == [["a1"], ["a2"], ["b1", "b2"]]
    assert ("DescribeStream", "shardId-1") in streams.calls  # the listing went on to page two


def test_shards_are_listed_again_after_the_listing_interval_not_on_every_poll(monkeypatch):
    monkeypatch.setattr(pump_streams, "SHARD_LISTING_INTERVAL_S", 0.5)
    streams = _FakeStreams()
    streams.add_shard("shardId-1")
    streams.add_shard("shardId-2")
    calls: list[list[dict]] = []
    pump = _fake_pump(streams, calls)

    for _ in range(5):
        pump.poll_once()
    streams.add_shard("shardId-3")
    streams.write("shardId-3", "new")
    pump.poll_once()
    assert calls == []
    time.sleep(0.6)
    pump.poll_once()

    assert [_keys(records) for records in calls] == [["new"]]
    assert streams.count("DescribeStream") == 2
    # One iterator and one read per open shard and poll: 6 polls of 2 shards, then 3.
    assert (streams.count("GetShardIterator"), streams.count("GetRecords")) == (15, 15)


def test_an_expired_iterator_is_read_again_from_the_last_record():
    streams = _FakeStreams()
    streams.add_shard("shardId-1")
    streams.write("shardId-1", "a1", "a2")
    calls: list[list[dict]] = []
    pump = _fake_pump(streams, calls)
    pump.drain()
    streams.write("shardId-1", "a3")
    streams.fail_next_get_records = "ExpiredIteratorException"

    pump.drain()

    assert [_keys(records) for records in calls] == [["a1", "a2"], ["a3"]]
    at_a2 = ("GetShardIterator", "shardId-1", "AT_SEQUENCE_NUMBER", streams.sequence_number("a2"))
    assert streams.calls.count(at_a2) >= 2  # the expired one, and the one after it


def test_held_iterators_read_once_per_poll_and_an_expired_one_is_replaced_at_the_last_record():
    streams = _FakeStreams()
    streams.add_shard("shardId-1")
    streams.write("shardId-1", "a1", "a2")
    calls: list[list[dict]] = []
    app = _stream_app("fake", calls)
    pump = EventPump(
        app, clients={"dynamodb": _FakeDynamoDB(), "dynamodbstreams": streams}, held_iterators=True
    )
    pump.drain()
    iterators = streams.count("GetShardIterator")
    reads = streams.count("GetRecords")

    assert not pump.poll_once()  # nothing new: one GetRecords on the held iterator
    assert (streams.count("GetShardIterator"), streams.count("GetRecords")) == (iterators, reads + 1)

    streams.write("shardId-1", "a3")
    streams.fail_next_get_records = "ExpiredIteratorException"
    pump.drain()
    streams.write("shardId-1", "a4")
    pump.drain()

    assert [_keys(records) for records in calls] == [["a1", "a2"], ["a3"], ["a4"]]
    at_a2 = ("GetShardIterator", "shardId-1", "AT_SEQUENCE_NUMBER", streams.sequence_number("a2"))
    assert streams.calls.count(at_a2) == 1  # once, after the expired iterator, then held again


def test_a_shard_trimmed_past_the_last_record_read_is_read_on_from_its_oldest_record(caplog):
    streams = _FakeStreams()
    streams.add_shard("shardId-1")
    streams.write("shardId-1", "a1")
    calls: list[list[dict]] = []
    pump = _fake_pump(streams, calls)
    pump.drain()
    streams.write("shardId-1", "a2", "a3", "a4")
    streams.trim("shardId-1", 2)  # a1 and a2 are gone: a2 was never read

    with caplog.at_level(logging.WARNING, logger=pump_streams.__name__):
        pump.drain()

    assert [_keys(records) for records in calls] == [["a1"], ["a3", "a4"]]
    assert "trimmed" in caplog.text


def test_a_shard_that_leaves_the_stream_unfinished_no_longer_holds_back_its_child(monkeypatch, caplog):
    monkeypatch.setattr(pump_streams, "SHARD_LISTING_INTERVAL_S", 0.0)
    streams = _FakeStreams()
    streams.add_shard("shardId-1")
    streams.write("shardId-1", "a1")
    calls: list[list[dict]] = []
    pump = _fake_pump(streams, calls)
    pump.drain()
    del streams.shards["shardId-1"]  # as DynamoDB drops a shard a day after it closed
    streams.add_shard("shardId-2", parent="shardId-1")
    streams.write("shardId-2", "b1")

    with caplog.at_level(logging.WARNING, logger=pump_streams.__name__):
        pump.drain()

    assert [_keys(records) for records in calls] == [["a1"], ["b1"]]
    assert "left the stream" in caplog.text
    assert "shardId-1" not in pump.stream_consumers[0].shards  # forgotten once finished


# --- DynamoDB Local -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamodb_local():
    reason = why_unavailable()
    if reason is not None:
        pytest.skip(f"DynamoDB Local cannot run here: {reason}")
    server = DynamoDBLocal.start()
    try:
        yield server
    finally:
        server.stop()


def _local_clients(server: DynamoDBLocal) -> dict[str, Any]:
    return {
        service: boto3.client(
            service,
            endpoint_url=server.url,
            region_name=REGION,
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        for service in ("dynamodb", "dynamodbstreams")
    }


def test_against_dynamodb_local_each_record_is_delivered_once_across_a_cancelled_transaction(
    dynamodb_local, caplog
):
    # moto's mock_aws (this module's autouse fixture) lets requests to other endpoints through.
    clients = _local_clients(dynamodb_local)
    dynamodb = clients["dynamodb"]
    table = _name("items")
    stream_arn = _create_table(table, dynamodb)
    calls: list[list[dict]] = []
    pump = EventPump(_stream_app(table, calls), clients=clients)
    _put(table, "a", "b", dynamodb=dynamodb)
    pump.drain()

    _cancelled_transaction(table, "cancelled", dynamodb)
    _put(table, "c", dynamodb=dynamodb)
    with caplog.at_level(logging.WARNING, logger=pump_streams.__name__):
        pump.drain()

    assert [_keys(records) for records in calls] == [["a", "b"], ["c"]]
    assert calls[0][0]["eventSourceARN"] == stream_arn
    assert isinstance(calls[0][0]["dynamodb"]["ApproximateCreationDateTime"], int | float)
    assert caplog.text == ""  # no rollback, no trimming: DynamoDB Local keeps its records
    requests: list[str] = []
    clients["dynamodbstreams"].meta.events.register(
        "before-call", lambda model, **kwargs: requests.append(model.name)
    )
    assert not pump.poll_once()
    assert requests == ["GetShardIterator", "GetRecords"]


def test_against_dynamodb_local_held_iterators_follow_an_empty_shard_and_read_once_per_poll(dynamodb_local):
    clients = _local_clients(dynamodb_local)
    dynamodb = clients["dynamodb"]
    table = _name("items")
    _create_table(table, dynamodb)
    calls: list[list[dict]] = []
    pump = EventPump(
        _stream_app(table, calls, starting_position="LATEST"), clients=clients, held_iterators=True
    )
    assert not pump.poll_once()  # a shard nothing was ever written to
    _put(table, "a", dynamodb=dynamodb)
    pump.drain()
    _put(table, "b", "c", dynamodb=dynamodb)
    pump.drain()

    assert [_keys(records) for records in calls] == [["a"], ["b", "c"]]
    requests: list[str] = []
    clients["dynamodbstreams"].meta.events.register(
        "before-call", lambda model, **kwargs: requests.append(model.name)
    )
    assert not pump.poll_once()
    assert requests == ["GetRecords"]
