"""Reading the records a test wrote from the tables' streams, in the shape Lambda delivers them.

On moto the `tables` fixture drops earlier tests' records; on DynamoDB Local the
`streams_from_now` fixture calls `mark`, and `stream_records` reads from there: a LATEST
iterator per shard is a position that can be read from again and again.
"""

from __future__ import annotations

import functools

from chalicelib.local.lambda_events import lambda_stream_record
from tests.conftest import aws_client

_marks: dict[str, dict[str, str]] = {}  # table → shard id → iterator at the mark


@functools.cache
def _stream_arn(table_name: str) -> str:
    # A table keeps its stream for the session: neither backend replaces it.
    return aws_client("dynamodb").describe_table(TableName=table_name)["Table"]["LatestStreamArn"]


def _shards(arn: str) -> list[dict]:
    return aws_client("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]


def _is_empty(streams, arn: str, shard_id: str) -> bool:
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")
    return not streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1)["Records"]


def mark(table_names) -> None:
    """From now on, `stream_records` of these tables returns only records written after this."""
    streams = aws_client("dynamodbstreams")
    for table_name in table_names:
        arn = _stream_arn(table_name)
        marks = {}
        for shard in _shards(arn):
            # DynamoDB Local's LATEST iterator on a shard that never held a record fails once
            # one arrives: an empty shard is read from its start instead.
            if not _is_empty(streams, arn, shard["ShardId"]):
                marks[shard["ShardId"]] = streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST"
                )["ShardIterator"]
        _marks[table_name] = marks


def stream_records(table_name: str) -> list[dict]:
    streams = aws_client("dynamodbstreams")
    arn = _stream_arn(table_name)
    marked = _marks.get(table_name, {})
    records = []
    for shard in _shards(arn):
        iterator = (
            marked.get(shard["ShardId"])
            or streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        )
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += [lambda_stream_record(r, arn) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


def interaction_records() -> list[dict]:
    from chalicelib.config import get_settings

    return stream_records(get_settings().interactions_table)


def customer_records() -> list[dict]:
    from chalicelib.config import get_settings

    return stream_records(get_settings().customers_table)
