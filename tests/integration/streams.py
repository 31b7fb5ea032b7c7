"""Reading the records a test wrote from moto's streams, in the shape Lambda delivers them."""

from __future__ import annotations

import boto3

from chalicelib.local.pump import lambda_stream_record


def stream_records(table_name: str) -> list[dict]:
    dynamodb = boto3.client("dynamodb")
    streams = boto3.client("dynamodbstreams")
    arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
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
