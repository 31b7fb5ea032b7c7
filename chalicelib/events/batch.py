"""Powertools batch processing for the consumers, imported on first use: every Lambda function
of the app imports app.py, and the batch utility costs ~100 ms that the API need not pay."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from chalicelib.domain.clock import Deadline

# A failed queue message waits this long before its second receive, twice as long before each
# later one (30 s, 1, 2, 4 minutes).
BACKOFF_S = 30


def time_left(context: Any, reserve_s: float, most_of_it: float = 0.8) -> Deadline:
    """The invocation's time (its Lambda context's) less what it keeps to hand its work on:
    `reserve_s`, or, of a short time, the part of it beyond `most_of_it`."""
    remaining = context.get_remaining_time_in_millis() / 1000
    return Deadline(remaining - min(reserve_s, remaining * (1 - most_of_it)))


def _processor(kind: str):
    # A new one per batch: a BatchProcessor holds the batch it is processing, so one shared by
    # two batches at once (two consumers' threads in the local event pump) loses records.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

    return BatchProcessor(event_type=EventType.DynamoDBStreams if kind == "streams" else EventType.SQS)


def process(event: Any, record_handler: Callable[[Any], None], kind: str) -> dict:
    """Run `record_handler` on each record of a Chalice stream ("streams") or queue ("sqs")
    event; failures are reported per record in `batchItemFailures`."""
    return process_raw(event.to_dict(), event.context, record_handler, kind)


def process_raw(
    raw_event: dict, context: Any, record_handler: Callable[[Any], None], kind: str = "streams"
) -> dict:
    from aws_lambda_powertools.utilities.batch import process_partial_response

    return process_partial_response(
        event=raw_event, record_handler=record_handler, processor=_processor(kind), context=context
    )


def back_off(queue: Any, record: Any, receives: int) -> None:
    """Hide a failed SQS message of `queue` (a WorkQueue) for the backoff of its `receives`-th
    receive; if that fails, the queue's visibility timeout applies."""
    with contextlib.suppress(Exception):
        queue.retry_later(record.receipt_handle, BACKOFF_S * 2 ** (receives - 1))
