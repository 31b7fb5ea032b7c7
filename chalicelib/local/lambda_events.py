"""The events and context Lambda hands a function, built from what boto3 returns locally.

boto3 and Lambda disagree on shapes: GetRecords gives `ApproximateCreationDateTime` as a
`datetime` and binary values as bytes, and its records lack `eventSourceARN`; ReceiveMessage
gives `Body`/`MessageId`/`ReceiptHandle` where Lambda delivers `body`/`messageId`/`receiptHandle`.
The event pump (pump.py) converts with these, so handlers see what they will see on Lambda.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.clock import to_rfc3339

# moto's account: the ARNs of anything the pump makes up (rules, functions) use it too.
ACCOUNT_ID = os.environ.get("MOTO_ACCOUNT_ID", "123456789012")


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


def region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "eu-north-1"


def function_arn(function_name: str) -> str:
    return f"arn:aws:lambda:{region()}:{ACCOUNT_ID}:function:{function_name}"


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


def scheduled_event(rule_name: str) -> dict:
    """The event EventBridge sends a scheduled function, from the rule `rule_name`."""
    where = region()
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": to_rfc3339(datetime.now(UTC), timespec="seconds"),
        "region": where,
        "resources": [f"arn:aws:events:{where}:{ACCOUNT_ID}:rule/{rule_name}"],
        "detail": {},
    }


def on_failure_record(function_name: str, attempts: int, batch_info: dict) -> dict:
    """What Lambda sends a stream mapping's on-failure destination when it gives up a batch."""
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn(function_name),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": attempts,
        },
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST"},
        "version": "1.0",
        "timestamp": to_rfc3339(datetime.now(UTC)),
        **batch_info,
    }
