"""The events queue and the webhooks-out queue driven by a test, as their event source mappings
would (records of Lambda's shape, each deleted unless the consumer reports it failed), so that
a test can deliver an event twice, look at what is held back, and bring a hidden message back
at once instead of waiting for its retry."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import FrozenClock
from chalicelib.domain.events import Event
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from chalicelib.store.webhook_queue import SqsFifoQueue
from tests.conftest import aws_client


@dataclass
class Queue:
    name: str
    handler: str
    batch_size: int

    def __post_init__(self) -> None:
        self.sqs = aws_client("sqs")
        self.url = self.sqs.get_queue_url(QueueName=self.name)["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def receive(self, limit: int | None = None) -> list[dict]:
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=limit or self.batch_size,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        return [lambda_sqs_record(m, self.arn) for m in messages]

    def attributes(self) -> dict[str, int]:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return {name: int(value) for name, value in found.items()}


@dataclass
class Hidden:
    receipt_handle: str
    seconds: int


@dataclass
class WebhookQueues:
    app: Any
    clock: FrozenClock
    hidden: list[Hidden] = field(default_factory=list)
    invocations: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        settings = get_settings()
        self.events = Queue(settings.events_queue_name, "fan_out_events", 10)
        self.out = Queue(settings.webhooks_out_queue_name, "deliver_webhooks", 1)

    def record_visibility(self, monkeypatch) -> WebhookQueues:
        """Every ChangeMessageVisibility the consumer asks for is recorded (and made)."""
        real = SqsFifoQueue.retry_later

        def recording(queue, receipt_handle: str, seconds: int) -> None:
            self.hidden.append(Hidden(receipt_handle, seconds))
            real(queue, receipt_handle, seconds)

        monkeypatch.setattr(SqsFifoQueue, "retry_later", recording)
        return self

    def invoke(self, queue: Queue, records: list[dict]) -> set[str]:
        """One invocation: the message ids reported failed (all of them if it raised)."""
        context = LambdaContext(queue.handler, 256, f"arn:aws:lambda:::function:{queue.handler}", 30_000)
        try:
            reply = self.app.handler_map[queue.handler]({"Records": records}, context)
        except Exception:
            return {r["messageId"] for r in records}
        self.invocations.append(reply)
        return {failure["itemIdentifier"] for failure in (reply or {}).get("batchItemFailures", [])}

    def consume(self, queue: Queue, records: list[dict]) -> set[str]:
        failed = self.invoke(queue, records)
        for record in records:
            if record["messageId"] not in failed:
                queue.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=record["receiptHandle"])
        return failed

    # The events queue

    def publish(self, event: Event) -> Event:
        wiring.event_publisher().publish(event)
        return event

    def fan_out(self) -> list[dict]:
        """Every event on the events queue to the fan-out (what it received)."""
        taken = []
        while records := self.events.receive():
            assert self.consume(self.events, records) == set()
            taken += records
        return taken

    # The webhooks-out queue

    def deliver_one(self) -> tuple[dict | None, bool]:
        """The next message the queue hands out, to the consumer: (record, reported failed)."""
        records = self.out.receive(1)
        if not records:
            return None, False
        return records[0], bool(self.consume(self.out, records))

    def deliver_all(self, most: int = 100) -> list[dict]:
        """Deliver what the queue hands out until it hands out nothing (hidden messages, and the
        messages of their lanes, stay)."""
        done = []
        for _ in range(most):
            record, _failed = self.deliver_one()
            if record is None:
                return done
            done.append(record)
        raise AssertionError("the webhooks-out queue never ran dry")

    def bring_back(self) -> None:
        """The retries' time has come: the clock moves past the longest delay asked for, and
        every hidden message is visible again."""
        if not self.hidden:
            return
        self.clock.advance(timedelta(seconds=max(h.seconds for h in self.hidden) + 1))
        for hidden in self.hidden:
            # A message deleted since, or received again with a newer receipt, is left alone.
            with contextlib.suppress(ClientError):
                self.out.sqs.change_message_visibility(
                    QueueUrl=self.out.url, ReceiptHandle=hidden.receipt_handle, VisibilityTimeout=0
                )
        self.hidden.clear()


def event(type_: str, customer_id: str, at: datetime, n: int = 0, **data: Any) -> Event:
    return Event(
        id=f"evt-{customer_id}-{type_}-{int(at.timestamp() * 1000)}-{n}",
        type=type_,
        occurred_at=at,
        subject=customer_id,
        data={"customer_id": customer_id, **data},
    )


def body(record: dict) -> dict:
    return json.loads(record["body"])
