"""Run a Chalice app's stream, queue and schedule handlers locally, the way Lambda would.

`chalice local` serves HTTP only. `EventPump` finds the app's `on_dynamodb_record`,
`on_sqs_message` and `schedule` handlers, polls the local services (moto, DynamoDB Local) for
them and invokes each handler with the event Lambda would deliver:

* DynamoDB streams: the handler's stream ARN is a placeholder whose `table/<name>/` part names
  the table; its real stream is found with DescribeTable.
  Each poll takes a fresh shard iterator at the last record read (the starting position while
  none has been read; for LATEST, the newest record at the first look) instead of following
  `NextShardIterator`. moto answers a cancelled TransactWriteItems by putting back a copy of
  the table taken before it, with a new shard object under the same shard id: a held iterator
  goes on reading the discarded shard, which holds the cancelled writes and never anything
  new. Reading *at* the last record also proves it is still there: when moto rolls back while
  the pump reads (it polls from its own thread), records it saw are gone and their sequence
  numbers are reused, so it reads again from the oldest record it remembers and goes on from
  where the shard differs.
  Shards are followed as DynamoDB Streams documents them: GetRecords without a
  `NextShardIterator` means the shard is closed, and once its records are processed it is
  finished and not read again; the shard list is read again every `SHARD_LISTING_INTERVAL_S`
  (and at once when a shard closes); shards found after the first look are read from
  TRIM_HORIZON, and a child waits until its parent is finished, as Lambda keeps the order of
  changes to an item. An expired iterator is asked for again; a position trimmed away reads on
  from the oldest record left. (moto keeps one shard per table, and DynamoDB Local run as a
  server never rolls its shard over; AWS rolls shards every few hours.) With
  `held_iterators=True` (DynamoDB Local, which never swaps a shard) the pump follows
  `NextShardIterator` as Lambda does, one GetRecords per poll, and goes back to a fresh
  iterator at the last record only after an error.
  Records are converted to Lambda's shape (`eventSourceARN`, `ApproximateCreationDateTime` in
  epoch seconds, binary values as base64). Failures are handled as with
  `ReportBatchItemFailures` and `BisectBatchOnFunctionError`: the checkpoint moves to the
  lowest failed sequence number and the batch is retried from there; a handler that raises has
  its batch halved (which does not count as a retry) down to one record. After `max_attempts`
  attempts at the same checkpoint the batch is skipped and its batch info goes to `on_failure`
  (the on-failure destination; logged by default).
* SQS: messages are received (at most 10 at a time), converted, handed over, and the ones not
  listed in `batchItemFailures` deleted; if the handler raises, none are. The queue's own
  visibility timeout and redrive policy (DLQ after maxReceiveCount) then apply.
* Schedules: `rate(N minute|minutes|hour|hours|day|days)` runs every N units, the first time N
  units after start, as EventBridge does. `cron(...)` is not interpreted locally: it runs once
  every 24 hours after start. `trigger(name)` runs any schedule now.

Retries happen on the next poll, without Lambda's backoff. Handler errors are logged and never
stop the pump. `start()` polls every source in one thread; `start(per_source=True)` gives each
stream, queue and the schedules a thread of their own, as Lambda runs one poller per event
source mapping: a busy consumer then never holds the others back. `wait_idle()` waits until the
running pump has consumed everything written before the call.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalice.app import DynamoDBEventConfig, ScheduledEventConfig, SQSEventConfig

log = logging.getLogger(__name__)

# moto's account: the ARNs of anything the pump makes up (rules, functions) use it too.
ACCOUNT_ID = os.environ.get("MOTO_ACCOUNT_ID", "123456789012")
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 60  # Chalice's default lambda_timeout
SQS_MAX_MESSAGES = 10
CRON_PERIOD_S = 24 * 3600
# Shards only change when DynamoDB rolls them over (hours apart; moto and DynamoDB Local never
# do); listing them on every poll would just load the emulator. A shard that closes asks for a
# listing at once, to find its children.
SHARD_LISTING_INTERVAL_S = 10.0
GET_RECORDS_LIMIT = 1000  # the API's maximum
# How many records of a shard are remembered to tell what a rollback took back (moto); a
# transaction writes at most 100 items.
SEEN_RECORDS = 1000
_RATE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
_TABLE_IN_ARN = re.compile(r":table/([^/]+)(?:/|$)")

OnFailure = Callable[[str, dict], None]
Invoke = Callable[[str, dict], Any]


@dataclass
class LambdaContext:
    """The attributes of Lambda's Python context object that handlers and Powertools use."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_ms: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None
    _started: float = field(default_factory=time.monotonic, init=False, repr=False)

    def get_remaining_time_in_millis(self) -> int:
        elapsed_ms = (time.monotonic() - self._started) * 1000
        return max(0, int(self.timeout_ms - elapsed_ms))


def _region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "eu-north-1"


def _b64(value: Any) -> Any:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes | bytearray) else value


def _lambda_attribute_value(value: dict) -> dict:
    """boto3 decodes binary attribute values to bytes; Lambda delivers base64 strings."""
    converted: dict[str, Any] = {}
    for kind, item in value.items():
        if kind == "B":
            converted[kind] = _b64(item)
        elif kind == "BS":
            converted[kind] = [_b64(b) for b in item]
        elif kind == "M":
            converted[kind] = {k: _lambda_attribute_value(v) for k, v in item.items()}
        elif kind == "L":
            converted[kind] = [_lambda_attribute_value(v) for v in item]
        else:
            converted[kind] = item
    return converted


def _lambda_image(image: dict) -> dict:
    return {name: _lambda_attribute_value(value) for name, value in image.items()}


def lambda_stream_record(record: dict, stream_arn: str) -> dict:
    """A record from DynamoDB Streams GetRecords (as boto3 returns it) in Lambda's event shape."""
    source = record["dynamodb"]
    created = source.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        created = int(created.timestamp())
    dynamodb: dict[str, Any] = {"ApproximateCreationDateTime": created}
    for name in ("Keys", "NewImage", "OldImage"):
        if name in source:
            dynamodb[name] = _lambda_image(source[name])
    for name in ("SequenceNumber", "SizeBytes", "StreamViewType"):
        if name in source:
            dynamodb[name] = source[name]
    converted = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": stream_arn.split(":")[3],
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in record:
        converted["userIdentity"] = record["userIdentity"]
    return converted


def _lambda_message_attribute(value: dict) -> dict:
    converted: dict[str, Any] = {
        "stringListValues": value.get("StringListValues", []),
        "binaryListValues": [_b64(b) for b in value.get("BinaryListValues", [])],
        "dataType": value["DataType"],
    }
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = _b64(value["BinaryValue"])
    return converted


def lambda_sqs_record(message: dict, queue_arn: str) -> dict:
    """A message from SQS ReceiveMessage in Lambda's event shape."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3],
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_items(response: Any, identifiers: list[str]) -> list[str]:
    """The identifiers a `ReportBatchItemFailures` response marks as failed.

    As in Lambda: no response or an empty list is success; a missing, empty or unknown
    `itemIdentifier` fails the whole batch.
    """
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return []
    failures = response["batchItemFailures"]
    known = set(identifiers)
    if not isinstance(failures, list):
        return list(identifiers)
    failed = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in known:
            return list(identifiers)
        failed.append(identifier)
    return failed


def _log_on_failure(function_name: str, record: dict) -> None:
    log.warning(
        "%s: retries exhausted, batch sent to the on-failure destination: %s",
        function_name,
        json.dumps(record, default=str),
    )


@dataclass
class _Shard:
    shard_id: str
    parent_id: str | None = None
    start: str = "TRIM_HORIZON"  # where reading begins while nothing has been read
    # (sequence number, eventID) of the records read lately, the last one being the position.
    seen: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=SEEN_RECORDS))
    trimmed: bool = False  # the position was trimmed away: read on from the trim horizon
    closed: bool = False  # no NextShardIterator: the shard will get no more records
    buffer: list[dict] = field(default_factory=list)  # fetched, not yet checkpointed
    attempts: int = 0  # failed attempts at the current checkpoint
    batch_limit: int = 0  # halved while a raising batch is bisected
    iterator: str | None = None  # the NextShardIterator to go on with (held_iterators only)

    @property
    def finished(self) -> bool:
        return self.closed and not self.buffer


def _identity(record: dict) -> tuple[str, str]:
    return record["dynamodb"]["SequenceNumber"], record["eventID"]


class _StreamConsumer:
    def __init__(self, pump: EventPump, source: DynamoDBEventConfig) -> None:
        self.pump = pump
        self.name = source.name
        self.batch_size = max(1, int(source.batch_size))
        self.starting_position = pump.starting_position or source.starting_position
        match = _TABLE_IN_ARN.search(source.stream_arn)
        if match is None:
            raise ValueError(f"{source.name}: no table name in stream ARN {source.stream_arn!r}")
        self.table = match.group(1)
        self.stream_arn: str | None = None
        self.shards: dict[str, _Shard] = {}
        self._list_shards_at = 0.0
        self._warned = False

    def poll(self) -> bool:
        if not self._discover():
            return False
        invoked = False
        for shard in list(self.shards.values()):
            if shard.finished or not self._parent_finished(shard):
                continue
            invoked |= self._step(shard)
        return invoked

    def _parent_finished(self, shard: _Shard) -> bool:
        # Lambda's ordering guarantee: a child holds later changes to the parent's keys.
        parent = self.shards.get(shard.parent_id) if shard.parent_id else None
        return parent is None or parent.finished

    def _discover(self) -> bool:
        from botocore.exceptions import ClientError

        first_time = self.stream_arn is None
        if not first_time and time.monotonic() < self._list_shards_at:
            return True
        if first_time:
            try:
                table = self.pump.dynamodb.describe_table(TableName=self.table)["Table"]
            except ClientError as error:
                if error.response["Error"]["Code"] != "ResourceNotFoundException":
                    raise
                table = {}
            self.stream_arn = table.get("LatestStreamArn")
            if self.stream_arn is None:
                if not self._warned:
                    log.warning("%s: table %s has no stream yet; waiting", self.name, self.table)
                    self._warned = True
                return False
        self._list_shards_at = time.monotonic() + SHARD_LISTING_INTERVAL_S
        listed = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            description = self.pump.streams.describe_stream(**kwargs)["StreamDescription"]
            listed.extend(description["Shards"])
            if not description.get("LastEvaluatedShardId"):
                break
            kwargs["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
        for described in listed:
            if described["ShardId"] not in self.shards:
                # Shards that appear later are children: Lambda reads them from the start.
                self.shards[described["ShardId"]] = _Shard(
                    described["ShardId"],
                    parent_id=described.get("ParentShardId"),
                    start=self.starting_position if first_time else "TRIM_HORIZON",
                )
        present = {described["ShardId"] for described in listed}
        for shard_id, shard in list(self.shards.items()):
            if shard_id in present:
                continue
            if shard.finished:
                # DynamoDB drops a closed shard a day after its last record; so can we.
                del self.shards[shard_id]
            elif not shard.closed:
                log.warning("%s: shard %s left the stream before it was read to its end", self.name, shard_id)
                shard.closed = True
        return True

    def _records(self, shard: _Shard, position: dict[str, str]) -> tuple[list[dict], bool]:
        """One GetShardIterator and one GetRecords: the records there, and whether the shard is closed."""
        streams = self.pump.streams
        iterator = streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard.shard_id, **position)
        return self._read(shard, iterator["ShardIterator"])

    def _read(self, shard: _Shard, iterator: str) -> tuple[list[dict], bool]:
        response = self.pump.streams.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
        following = response.get("NextShardIterator")
        shard.iterator = following if self.pump.held_iterators else None
        return response.get("Records", []), not following

    def _fetch(self, shard: _Shard, *, retry: bool = True) -> None:
        from botocore.exceptions import ClientError

        # A fresh iterator on every poll, never a held NextShardIterator: after moto cancels a
        # transaction, a held one reads a discarded copy of the shard (see the module docstring).
        # Reading at the last record, not after it, proves the shard still holds it.
        try:
            if shard.iterator is not None:
                records, closed = self._read(shard, shard.iterator)
            elif shard.trimmed:
                records, closed = self._records(shard, {"ShardIteratorType": "TRIM_HORIZON"})
                after = int(shard.seen[-1][0])
                records = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) > after]
                shard.trimmed = False
            elif shard.seen:
                position = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": shard.seen[-1][0]}
                records, closed = self._records(shard, position)
                if records and _identity(records[0]) == shard.seen[-1]:
                    records = records[1:]
                elif records:
                    records, closed = self._after_rewind(shard)
            elif shard.start == "LATEST":
                closed = self._skip_to_end(shard)
                records = []
            else:
                records, closed = self._records(shard, {"ShardIteratorType": shard.start})
        except ClientError as error:
            shard.iterator = None  # the next attempt starts at the last record read
            code = error.response["Error"]["Code"]
            if code == "TrimmedDataAccessException" and shard.seen and not shard.trimmed:
                log.warning(
                    "%s: shard %s was trimmed past the last record read; reading on from the oldest",
                    self.name,
                    shard.shard_id,
                )
                shard.trimmed = True
            if code in ("ExpiredIteratorException", "TrimmedDataAccessException"):
                # Once more at once (an expired iterator is asked for again at the same place),
                # else the next poll does.
                if retry:
                    self._fetch(shard, retry=False)
                return
            if code == "ResourceNotFoundException":
                log.warning("%s: shard %s is gone", self.name, shard.shard_id)
                records, closed = [], True
            else:
                raise
        for record in records:
            shard.buffer.append(lambda_stream_record(record, self.stream_arn or ""))
            shard.seen.append(_identity(record))
        if closed and not shard.closed:
            shard.closed = True
            self._list_shards_at = 0.0  # its children are there to be found now

    def _skip_to_end(self, shard: _Shard) -> bool:
        """Remember the newest record of the shard without delivering any (LATEST, at first look)."""
        streams = self.pump.streams
        iterator = streams.get_shard_iterator(
            StreamArn=self.stream_arn, ShardId=shard.shard_id, ShardIteratorType="TRIM_HORIZON"
        ).get("ShardIterator")
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            records = response.get("Records", [])
            if records:
                shard.seen.append(_identity(records[-1]))
            iterator = response.get("NextShardIterator")
            # Locally (moto, DynamoDB Local) an empty page is the end of what has been written.
            if not records:
                break
        # An empty shard: all it will ever hold is written after this first look.
        shard.start = "TRIM_HORIZON"
        shard.iterator = iterator if self.pump.held_iterators else None
        return iterator is None

    def _after_rewind(self, shard: _Shard) -> tuple[list[dict], bool]:
        """The record at our position is another one: the shard was rolled back under us.

        Only moto does this, when it cancels a transaction while we read: its records and any
        written meanwhile were visible and are gone, and the sequence numbers are reused. The
        oldest record we remember is read again; from the first that differs, what we read is
        forgotten (and dropped if not yet delivered) and what is there now is new.
        """
        position = {"ShardIteratorType": "AT_SEQUENCE_NUMBER", "SequenceNumber": shard.seen[0][0]}
        records, closed = self._records(shard, position)
        kept = 0
        for remembered, record in zip(shard.seen, records, strict=False):
            if _identity(record) != remembered:
                break
            kept += 1
        gone = {event_id for _, event_id in list(shard.seen)[kept:]}
        waiting = len(shard.buffer)
        shard.buffer = [record for record in shard.buffer if record["eventID"] not in gone]
        if len(shard.buffer) != waiting:
            shard.attempts = 0
            shard.batch_limit = 0
        log.warning(
            "%s: shard %s was rolled back: %d record(s) read from it are gone, %d of them delivered",
            self.name,
            shard.shard_id,
            len(gone),
            len(gone) - (waiting - len(shard.buffer)),
        )
        for _ in range(len(shard.seen) - kept):
            shard.seen.pop()
        return records[kept:], closed

    def _step(self, shard: _Shard) -> bool:
        if not shard.closed and len(shard.buffer) < self.batch_size:
            self._fetch(shard)
        if not shard.buffer:
            return False
        limit = shard.batch_limit or self.batch_size
        batch = shard.buffer[:limit]
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        try:
            response = self.pump.invoke(self.name, {"Records": batch})
        except Exception:
            function_name = self.pump.function_name(self.name)
            log.exception("%s failed on a batch of %d stream record(s)", function_name, len(batch))
            if len(batch) > 1:
                shard.batch_limit = max(1, len(batch) // 2)
                return True
            failed = numbers
        else:
            failed = failed_items(response, numbers)
        if not failed:
            del shard.buffer[: len(batch)]
            shard.attempts = 0
            shard.batch_limit = 0
            return True
        first_failed = min(numbers.index(number) for number in failed)
        if first_failed > 0:
            del shard.buffer[:first_failed]
            shard.attempts = 0
        shard.attempts += 1
        if shard.attempts >= self.pump.max_attempts:
            self._skip(shard, shard.buffer[: len(batch) - first_failed])
        return True

    def _skip(self, shard: _Shard, batch: list[dict]) -> None:
        del shard.buffer[: len(batch)]
        arrivals = [record["dynamodb"].get("ApproximateCreationDateTime") for record in batch]
        self.pump.report_failure(
            self.name,
            shard.attempts,
            {
                "DDBStreamBatchInfo": {
                    "shardId": shard.shard_id,
                    "startSequenceNumber": batch[0]["dynamodb"]["SequenceNumber"],
                    "endSequenceNumber": batch[-1]["dynamodb"]["SequenceNumber"],
                    "approximateArrivalOfFirstRecord": _epoch_iso(arrivals[0]),
                    "approximateArrivalOfLastRecord": _epoch_iso(arrivals[-1]),
                    "batchSize": len(batch),
                    "streamArn": self.stream_arn,
                }
            },
        )
        shard.attempts = 0
        shard.batch_limit = 0


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch_iso(epoch: Any) -> str | None:
    return _iso(datetime.fromtimestamp(epoch, UTC)) if isinstance(epoch, int | float) else None


class _QueueConsumer:
    def __init__(self, pump: EventPump, source: SQSEventConfig) -> None:
        self.pump = pump
        self.name = source.name
        self.batch_size = max(1, min(SQS_MAX_MESSAGES, int(source.batch_size)))
        self.queue_name = source.queue or (source.queue_arn or "").split(":")[-1]
        self.url: str | None = None
        self.arn: str | None = None
        self._warned = False

    def _resolve(self) -> bool:
        from botocore.exceptions import ClientError

        if self.url is not None:
            return True
        try:
            url = self.pump.sqs.get_queue_url(QueueName=self.queue_name)["QueueUrl"]
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if "NonExistentQueue" not in code and code != "QueueDoesNotExist":
                raise
            if not self._warned:
                log.warning("%s: queue %s does not exist yet; waiting", self.name, self.queue_name)
                self._warned = True
            return False
        attributes = self.pump.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        self.arn = attributes["Attributes"]["QueueArn"]
        self.url = url
        return True

    def pending(self) -> int:
        if not self._resolve():
            return 0
        attributes = self.pump.sqs.get_queue_attributes(
            QueueUrl=self.url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def poll(self) -> bool:
        if not self._resolve():
            return False
        sqs = self.pump.sqs
        messages = sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=self.batch_size,
            # MessageSystemAttributeNames is the successor of AttributeNames.
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return False
        records = [lambda_sqs_record(message, self.arn or "") for message in messages]
        ids = [record["messageId"] for record in records]
        try:
            response = self.pump.invoke(self.name, {"Records": records})
        except Exception:
            log.exception("%s failed on %d message(s)", self.pump.function_name(self.name), len(records))
            return True
        failed = set(failed_items(response, ids))
        done = [record for record in records if record["messageId"] not in failed]
        for start in range(0, len(done), SQS_MAX_MESSAGES):
            chunk = done[start : start + SQS_MAX_MESSAGES]
            result = sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
            for failure in result.get("Failed", []):
                log.warning("%s: could not delete a message: %s", self.name, failure.get("Message"))
        return True


class _Schedule:
    def __init__(self, source: ScheduledEventConfig, now: float) -> None:
        self.name = source.name
        expression = source.schedule_expression
        self.expression = expression if isinstance(expression, str) else expression.to_string()
        self.period = _period(self.expression)
        self.due = now + self.period

    def take_due(self, now: float) -> bool:
        if now < self.due:
            return False
        self.due = now + self.period
        return True


def _period(expression: str) -> float:
    match = _RATE.match(expression.strip())
    if match is None:
        return CRON_PERIOD_S
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    return max(1, value) * _UNIT_SECONDS[unit]


class EventPump:
    """`EventPump(app).start()` in the local stack; `drain()` in tests.

    `config` (a chalice Config, see `stack.chalice_config`) supplies the stage and each
    function's memory and timeout; `on_failure(function_name, record)` receives Lambda's
    on-failure record when a stream batch is given up (the default logs it). `clock` times
    the schedules. `clients` maps service names (`dynamodb`, `dynamodbstreams`, `sqs`) to the
    boto3 clients to use instead of default ones, e.g. pointed at DynamoDB Local.
    `starting_position` ("LATEST" or "TRIM_HORIZON") overrides every stream handler's: "LATEST"
    leaves out what the streams hold at the first poll. `held_iterators` follows
    `NextShardIterator` instead of taking a fresh iterator on every poll (not on moto).
    """

    def __init__(
        self,
        app: Any,
        *,
        poll_interval: float = 0.2,
        max_attempts: int = 3,
        config: Any = None,
        on_failure: OnFailure | None = None,
        clock: Callable[[], float] = time.monotonic,
        clients: Mapping[str, Any] | None = None,
        starting_position: str | None = None,
        held_iterators: bool = False,
    ) -> None:
        self.app = app
        self.starting_position = starting_position
        self.held_iterators = held_iterators
        self.poll_interval = poll_interval
        self.max_attempts = max(1, max_attempts)
        self.on_failure = on_failure or _log_on_failure
        self._config = config
        self._stage = getattr(config, "chalice_stage", None) or "local"
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # When each polling loop last began a poll that found nothing to do, and how many
        # handler invocations there have been: what wait_idle() watches.
        self._idle_since: dict[str, float] = {}
        self.invocations = 0  # handler invocations begun, and ended (for wait_idle)
        self.completed = 0
        self._counting = threading.Lock()
        self._clients: dict[str, Any] = dict(clients or {})
        self.stream_consumers: list[_StreamConsumer] = []
        self.queue_consumers: list[_QueueConsumer] = []
        self.schedules: dict[str, _Schedule] = {}
        now = clock()
        for source in app.event_sources:
            if isinstance(source, DynamoDBEventConfig):
                self.stream_consumers.append(_StreamConsumer(self, source))
            elif isinstance(source, SQSEventConfig):
                self.queue_consumers.append(_QueueConsumer(self, source))
            elif isinstance(source, ScheduledEventConfig):
                self.schedules[source.name] = _Schedule(source, now)
            else:
                log.info("%s (%s) is not run locally", source.name, type(source).__name__)

    # AWS clients are made on first use, so the environment (endpoint, region) set before
    # then is the one they use.
    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service)
        return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def streams(self) -> Any:
        return self._client("dynamodbstreams")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    def function_name(self, name: str) -> str:
        return f"{self.app.app_name}-{self._stage}-{name}"

    def _context(self, name: str) -> LambdaContext:
        memory, timeout = DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
        if self._config is not None:
            scoped = self._config.scope(self._stage, name)
            memory = scoped.lambda_memory_size or memory
            timeout = scoped.lambda_timeout or timeout
        function_name = self.function_name(name)
        return LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=int(memory),
            invoked_function_arn=f"arn:aws:lambda:{_region()}:{ACCOUNT_ID}:function:{function_name}",
            timeout_ms=int(timeout) * 1000,
            log_group_name=f"/aws/lambda/{function_name}",
        )

    def invoke(self, name: str, event: dict) -> Any:
        """Call handler `name` with `event` and a fresh context, as one Lambda invocation."""
        with self._counting:
            self.invocations += 1
        try:
            return self.app.handler_map[name](event, self._context(name))
        finally:
            with self._counting:
                self.completed += 1

    def report_failure(self, name: str, attempts: int, batch_info: dict) -> None:
        function_name = self.function_name(name)
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"arn:aws:lambda:{_region()}:{ACCOUNT_ID}:function:{function_name}",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": attempts,
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
            "version": "1.0",
            "timestamp": _iso(datetime.now(UTC)),
            **batch_info,
        }
        try:
            self.on_failure(function_name, record)
        except Exception:
            log.exception("the on-failure hook of %s failed", function_name)

    def scheduled_event(self, name: str) -> dict:
        region = _region()
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT_ID,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": region,
            "resources": [f"arn:aws:events:{region}:{ACCOUNT_ID}:rule/{self.function_name(name)}"],
            "detail": {},
        }

    def trigger(self, name: str) -> Any:
        """Run schedule `name` now; its result is returned and its exception raised."""
        if name not in self.schedules:
            raise KeyError(name)
        return self.invoke(name, self.scheduled_event(name))

    def run_due_schedules(self) -> bool:
        ran = False
        now = self._clock()
        for schedule in self.schedules.values():
            if schedule.take_due(now):
                ran = True
                try:
                    self.trigger(schedule.name)
                except Exception:
                    log.exception("%s failed", self.function_name(schedule.name))
        return ran

    def poll_once(self, *, schedules: bool = True) -> bool:
        """One round over every stream, queue (and due schedule); True if a handler ran."""
        with self._lock:
            invoked = False
            for consumer in [*self.stream_consumers, *self.queue_consumers]:
                try:
                    invoked |= consumer.poll()
                except Exception:
                    log.exception("polling for %s failed", self.function_name(consumer.name))
            if schedules:
                invoked |= self.run_due_schedules()
            return invoked

    def drain(self, timeout: float = 60) -> None:
        """Process until no stream has new records and no queue holds messages (visible,
        in flight or delayed): failed messages are waited for until they land in a DLQ. The
        timeout is a ceiling for a stuck handler, not a target: an erasure of a large customer
        on a loaded machine takes seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.poll_once(schedules=False):
                waiting = {c.queue_name: n for c in self.queue_consumers if (n := c.pending())}
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queues still hold messages after {timeout} s: {waiting}")
                time.sleep(min(self.poll_interval, 0.05))
            elif time.monotonic() > deadline:
                raise TimeoutError(f"handlers still busy after {timeout} s")

    def start(self, *, per_source: bool = False) -> EventPump:
        if self._threads:
            return self
        self._stopping.clear()
        self._idle_since.clear()
        if not per_source:
            loops = {"event-pump": self.poll_once}
        else:
            # boto3 makes clients unsafely across threads: every thread shares these.
            for service in ("dynamodb", "dynamodbstreams", "sqs"):
                self._client(service)
            loops = {f"pump:{c.name}": c.poll for c in [*self.stream_consumers, *self.queue_consumers]}
            loops["pump:schedules"] = self.run_due_schedules
        for name, poll in loops.items():
            thread = threading.Thread(target=self._run, args=(name, poll), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # A thread still in a handler is kept: start() does not run a second poller beside it.
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _run(self, name: str, poll: Callable[[], bool]) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                busy = poll()
            except Exception:
                log.exception("%s: polling failed", name)
                self._stopping.wait(self.poll_interval)  # not idle: what it failed to read is unread
                continue
            if not busy:
                self._idle_since[name] = started
                self._stopping.wait(self.poll_interval)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait, while the pump runs, until every polling loop has found nothing to do in a poll
        begun after this call, with no handler invoked meanwhile and no queue holding messages:
        everything written before the call has been consumed. TimeoutError after `timeout`."""
        if not self.running:
            raise RuntimeError("wait_idle() needs a running pump: start() it, or drain()")
        deadline = time.monotonic() + timeout
        names = [thread.name for thread in self._threads]
        while True:
            # Both counts: a handler begun before the mark may still write after another
            # loop's idle poll; it is seen finishing.
            with self._counting:
                mark, invocations, completed = time.monotonic(), self.invocations, self.completed
            while not all(self._idle_since.get(name, 0.0) > mark for name in names):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"handlers still busy after {timeout} s")
                time.sleep(0.02)
            with self._counting:
                # Nothing began or ended since the mark, and nothing is running.
                quiet = (
                    (self.invocations, self.completed) == (invocations, completed) == (completed, completed)
                )
            if quiet and not any(c.pending() for c in self.queue_consumers):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"handlers still busy after {timeout} s")


def queue_destination(queue_url: str) -> OnFailure:
    """An `on_failure` hook that sends Lambda's on-failure record to an SQS queue."""

    import boto3

    sqs = boto3.client("sqs")  # made once: boto3 does not make clients safely across threads

    def send(function_name: str, record: dict) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str))
        log.warning("%s: retries exhausted, batch info sent to %s", function_name, queue_url)

    return send
