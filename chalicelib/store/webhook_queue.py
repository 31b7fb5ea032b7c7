"""The outbound webhooks queue (SQS FIFO): one message per delivery to send, in lanes
(message groups) of one subscription and one customer, which SQS delivers in order, one
message of a lane at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chalicelib.store.queues import QueueRefused, SqsWorkQueue

SQS_BATCH = 10


class SqsFifoQueue(SqsWorkQueue):
    def send_messages(self, messages: Sequence[Any]) -> None:
        """Messages (each with `body`, `group_id` and `dedup_id`) in SendMessageBatch requests
        of 10, in order; an entry SQS refuses is an error (the caller's work is retried, and the
        de-duplication ids make a second send harmless)."""
        for start in range(0, len(messages), SQS_BATCH):
            chunk = messages[start : start + SQS_BATCH]
            entries = [
                {
                    "Id": str(n),
                    "MessageBody": json.dumps(m.body, sort_keys=True),
                    "MessageGroupId": m.group_id[:128],
                    "MessageDeduplicationId": m.dedup_id[:128],
                }
                for n, m in enumerate(chunk)
            ]
            failed = self._client.send_message_batch(QueueUrl=self._url, Entries=entries).get("Failed")
            if failed:
                raise QueueRefused(
                    f"SQS refused {len(failed)} of {len(entries)} messages: {failed[0].get('Code')}"
                )
