"""The event pump's stream consumer: one DynamoDB stream read for one handler, as Lambda would.

The handler's stream ARN is a placeholder whose `table/<name>/` part names the table; its real
stream is found with DescribeTable.

Each poll takes a fresh shard iterator at the last record read (the starting position while
none has been read; for LATEST, the newest record at the first look) instead of following
`NextShardIterator`. moto answers a cancelled TransactWriteItems by putting back a copy of the
table taken before it, with a new shard object under the same shard id: a held iterator goes
on reading the discarded shard, which holds the cancelled writes and never anything new.
Reading *at* the last record also proves it is still there: when moto rolls back while the
pump reads (it polls from its own thread), records it saw are gone and their sequence numbers
are reused, so it reads again from the oldest record it remembers and goes on from where the
shard differs. With `held_iterators=True` (DynamoDB Local, which never swaps a shard) the pump
follows `NextShardIterator` as Lambda does, one GetRecords per poll, and goes back to a fresh
iterator at the last record only after an error.

Shards are followed as DynamoDB Streams documents them: GetRecords without a
`NextShardIterator` means the shard is closed, and once its records are processed it is
finished and not read again; the shard list is read again every `SHARD_LISTING_INTERVAL_S`
(and at once when a shard closes); shards found after the first look are read from
TRIM_HORIZON, and a child waits until its parent is finished, as Lambda keeps the order of
changes to an item. An expired iterator is asked for again; a position trimmed away reads on
from the oldest record left. (moto keeps one shard per table, and DynamoDB Local run as a
server never rolls its shard over; AWS rolls shards every few hours.)

Records are converted to Lambda's shape (lambda_events.py). Failures are handled as with
`ReportBatchItemFailures` and `BisectBatchOnFunctionError`: the checkpoint moves to the lowest
failed sequence number and the batch is retried from there; a handler that raises has its
batch halved (which does not count as a retry) down to one record. After `max_attempts`
attempts at the same checkpoint the batch is skipped and its batch info goes to the pump's
`on_failure` (the on-failure destination).
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chalicelib.domain.clock import to_rfc3339
from chalicelib.local.lambda_events import failed_items, lambda_stream_record

if TYPE_CHECKING:
    from chalice.app import DynamoDBEventConfig

    from chalicelib.local.pump import EventPump

log = logging.getLogger(__name__)

# Shards only change when DynamoDB rolls them over (hours apart; moto and DynamoDB Local never
# do); listing them on every poll would just load the emulator. A shard that closes asks for a
# listing at once, to find its children.
SHARD_LISTING_INTERVAL_S = 10.0
GET_RECORDS_LIMIT = 1000  # the API's maximum
# How many records of a shard are remembered to tell what a rollback took back (moto); a
# transaction writes at most 100 items.
SEEN_RECORDS = 1000
_TABLE_IN_ARN = re.compile(r":table/([^/]+)(?:/|$)")


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


class StreamConsumer:
    """The poller of one `on_dynamodb_record` handler: its stream's shards, read in order."""

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


def _epoch_iso(epoch: Any) -> str | None:
    return to_rfc3339(datetime.fromtimestamp(epoch, UTC)) if isinstance(epoch, int | float) else None
