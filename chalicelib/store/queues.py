"""SQS queues: the events queue (FIFO) and work queues such as case follow-ups."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cached_property

from chalicelib.domain.events import Event


class QueueRefused(RuntimeError):
    pass


class _Queue:
    def __init__(self, queue_name: str, region: str) -> None:
        self._queue_name = queue_name
        self._region = region

    @cached_property
    def _client(self):
        import boto3

        return boto3.client("sqs", region_name=self._region)

    @cached_property
    def _url(self) -> str:
        return self._client.get_queue_url(QueueName=self._queue_name)["QueueUrl"]


class SqsEventPublisher(_Queue):
    def publish(self, event: Event) -> None:
        # The record's id de-duplicates redeliveries within SQS's five-minute window;
        # consumers de-duplicate on `id` beyond it.
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=json.dumps(event.to_message(), ensure_ascii=False, sort_keys=True),
            MessageGroupId=event.subject or "crm",
            MessageDeduplicationId=event.id[:128],
            MessageAttributes={"type": {"DataType": "String", "StringValue": event.type}},
        )


class SqsWorkQueue(_Queue):
    """A queue of work messages with JSON bodies."""

    def send(self, body: dict, delay_s: int = 0) -> None:
        """`delay_s`: the message is received no sooner (at most 900 s, SQS's DelaySeconds)."""
        extra = {"DelaySeconds": delay_s} if delay_s else {}
        self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(body, sort_keys=True), **extra)

    def send_many(self, bodies: Iterable[dict]) -> None:
        """In SendMessageBatch requests of 10; any entry SQS refuses is an error (the caller's
        work is retried: sending a message twice is harmless where this is used)."""
        bodies = list(bodies)
        for start in range(0, len(bodies), 10):
            entries = [
                {"Id": str(n), "MessageBody": json.dumps(body, sort_keys=True)}
                for n, body in enumerate(bodies[start : start + 10])
            ]
            failed = self._client.send_message_batch(QueueUrl=self._url, Entries=entries).get("Failed")
            if failed:
                raise QueueRefused(
                    f"SQS refused {len(failed)} of {len(entries)} messages: {failed[0].get('Code')}"
                )

    def retry_later(self, receipt_handle: str, seconds: int) -> None:
        """Let a received message be received again after `seconds` (instead of the queue's
        visibility timeout)."""
        self._client.change_message_visibility(
            QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )
