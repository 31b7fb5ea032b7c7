"""The event pump's queue consumer: one SQS queue read for one handler, as Lambda would.

Messages are received (at most 10 at a time), converted to Lambda's shape (lambda_events.py),
handed over, and the ones not listed in `batchItemFailures` deleted; if the handler raises,
none are. The queue's own visibility timeout and redrive policy (DLQ after maxReceiveCount)
then apply.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from chalicelib.local.lambda_events import failed_items, lambda_sqs_record

if TYPE_CHECKING:
    from chalice.app import SQSEventConfig

    from chalicelib.local.pump import EventPump

log = logging.getLogger(__name__)

SQS_MAX_MESSAGES = 10  # the most one ReceiveMessage or DeleteMessageBatch takes
# Handlers that schedule their own retries by hiding a failed message for the retry's delay
# (outbound webhooks: up to 12 hours). A hidden message of theirs waits for its time, as a
# schedule does, and so do the later messages of its FIFO group, which SQS holds back (and
# counts as visible): once a receive finds nothing, `pending()` counts none of them, so
# drain() and wait_idle() do not wait for them (a running handler is counted by the pump's
# invocations instead, and a message sent since is found by the next receive).
SCHEDULED_RETRIES = frozenset({"deliver_webhooks"})


class QueueConsumer:
    """The poller of one `on_sqs_message` handler."""

    def __init__(self, pump: EventPump, source: SQSEventConfig) -> None:
        self.pump = pump
        self.name = source.name
        self.batch_size = max(1, min(SQS_MAX_MESSAGES, int(source.batch_size)))
        self.queue_name = source.queue or (source.queue_arn or "").split(":")[-1]
        self.url: str | None = None
        self.arn: str | None = None
        self._warned = False
        self._found_nothing = False  # the last receive found no message

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
        names = ["ApproximateNumberOfMessagesDelayed"]
        if self.name not in SCHEDULED_RETRIES:
            names += ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        elif not self._found_nothing:
            names.append("ApproximateNumberOfMessages")
        attributes = self.pump.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names)["Attributes"]
        return sum(int(attributes.get(name, 0)) for name in names)

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
        self._found_nothing = not messages
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
