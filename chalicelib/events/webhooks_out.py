"""Outbound webhook consumers (services/webhook_outbound.py).

`fan_out_events` reads the events queue (FIFO, a message group per customer): each event
becomes a delivery per subscription that takes it, queued on the webhooks-out queue. Batches
are processed as FIFO queues require (Powertools' SqsFifoPartialProcessor): a failed event
fails the later events of its customer in the batch too, so they come back in order, while
other customers' go on.

`deliver_webhooks` reads the webhooks-out queue (FIFO, a message group per subscription and
customer), one message per invocation: it POSTs the delivery. A failed attempt hides the
message for the retry's delay (ChangeMessageVisibility, at most 12 hours) and reports it
failed, so SQS keeps it — and, the queue being FIFO, holds the later messages of its lane
until it is done; the last attempt, a success or a delivery with nothing to do lets it go.
The same consumer walks replays (`{"type": "replay", ...}` messages) page by page.

`sweep_webhook_deliveries` (hourly) gives up the pending deliveries whose message the queue
no longer holds (dead-lettered, or past its retention), so none stays pending for ever."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from chalice import Blueprint, Rate

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import Deadline, parse_rfc3339
from chalicelib.domain.events import PERSONAL
from chalicelib.domain.webhook_subscriptions import MAX_DELAY_S
from chalicelib.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# The webhooks-out queue's maxReceiveCount (infra/resources.json, WebhooksOutQueue; a test
# compares): on a message's last receive its delivery is attempted once more, and then done.
MAX_RECEIVES = 20
# A message's visibility can reach 12 hours from its receipt, not from now: the time a
# handler may already have taken is left out of the delay asked for.
VISIBILITY_MARGIN_S = 60
# What a sweep leaves of its function's time, to stop between pages.
SWEEP_RESERVE_S = 10.0


class BadWebhookMessage(ValueError):
    pass


class RetryLater(Exception):
    """The message stays on the queue, hidden for `delay_s`: the record is reported failed."""

    def __init__(self, delay_s: int) -> None:
        super().__init__(f"received again in {delay_s} s")
        self.delay_s = delay_s


def _fifo_processor(*, raise_on_entire_batch_failure: bool = True):
    from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor

    processor = SqsFifoPartialProcessor(skip_group_on_error=True)
    processor.raise_on_entire_batch_failure = raise_on_entire_batch_failure
    return processor


def _process_fifo(event: Any, handler, *, retries_expected: bool = False) -> dict:
    """`handler` on each record; failures reported per record. With `retries_expected`, a
    batch whose records all wait for a retry (RetryLater) is an answer, not an error; any
    other failure is still raised (the function's error metrics and alarms see it)."""
    from aws_lambda_powertools.utilities.batch import process_partial_response
    from aws_lambda_powertools.utilities.batch.exceptions import (
        SQSFifoCircuitBreakerError,
        SQSFifoMessageGroupCircuitBreakerError,
    )

    processor = _fifo_processor(raise_on_entire_batch_failure=not retries_expected)
    response = process_partial_response(
        event=event.to_dict(), record_handler=handler, processor=processor, context=event.context
    )
    held = (RetryLater, SQSFifoCircuitBreakerError, SQSFifoMessageGroupCircuitBreakerError)
    errors = [info[1] for info in processor.exceptions if info and not isinstance(info[1], held)]
    if retries_expected and errors:
        raise errors[0]
    return response


# Fan-out


def _event_message(record: SQSRecord) -> dict:
    try:
        message = json.loads(record.body)
        str(message["id"]), str(message["type"]), parse_rfc3339(str(message["occurred_at"]))
        if not isinstance(message.get("data") or {}, dict):
            raise TypeError("data")
    except (ValueError, KeyError, TypeError):
        raise BadWebhookMessage(
            'an events message is Event.to_message(): {"id", "type", "occurred_at", "customer_id", "data"}'
        ) from None
    return message


def _erased_among(records: list[dict]) -> set[str]:
    """The customers of the batch's personal events who have been erased since they were
    published (one BatchGetItem; none when the batch has no such event): their events go to no
    webhook, so an erasure that ran while they waited on the queue is not undone."""
    wanted = set()
    for raw in records:
        try:
            message = json.loads(raw.get("body") or "")
            if message.get("type") in PERSONAL and message.get("customer_id"):
                wanted.add(str(message["customer_id"]))
        except (ValueError, AttributeError):
            continue  # refused record by record below
    if not wanted:
        return set()
    customers, _ = wiring.repositories()
    return customers.erased_among(wanted)


@bp.on_sqs_message(queue=get_settings().events_queue_name, batch_size=10)
def fan_out_events(event):
    service = wiring.webhook_outbound_service()
    subscriptions = []  # read once per batch, on its first event
    erased = _erased_among(event.to_dict().get("Records", []))

    def one(record: SQSRecord) -> None:
        message = _event_message(record)
        if message["type"] in PERSONAL and message.get("customer_id") in erased:
            logger.info(
                "event of an erased customer not sent to webhooks", extra={"event_type": message["type"]}
            )
            return
        if not subscriptions:
            subscriptions.append(wiring.webhook_subscription_repository().all())
        queued = service.fan_out(message, subscriptions[0])
        if queued:
            logger.info(
                "event fanned out to webhooks", extra={"event_type": message["type"], "queued": queued}
            )

    return _process_fifo(event, one)


# Delivery


def _delivery_message(record: SQSRecord) -> dict:
    try:
        body = json.loads(record.body)
        str(body["subscription_id"])
        if body.get("type") == "replay":
            str(body["replay_id"]), parse_rfc3339(str(body["since"])), int(body["page"])
            if body.get("start") is not None and not isinstance(body["start"], dict):
                raise TypeError("start")
        else:
            str(body["delivery_id"]), int(body.get("retry") or 0)
    except (ValueError, KeyError, TypeError):
        raise BadWebhookMessage(
            'a webhooks-out message is {"subscription_id", "delivery_id", "retry"?} or '
            '{"type": "replay", "subscription_id", "replay_id", "since", "page", "start"}'
        ) from None
    return body


def _hide(record: SQSRecord, delay_s: int, started: float) -> int:
    """Hide the message for `delay_s` (less what 12 hours from its receipt allow): if that
    fails, the queue's visibility timeout brings it back sooner, and the delivery's
    next_attempt_at hides it again."""
    seconds = max(0, min(delay_s, MAX_DELAY_S - VISIBILITY_MARGIN_S - int(time.monotonic() - started)))
    try:
        wiring.webhooks_out_queue().retry_later(record.receipt_handle, seconds)
    except Exception as error:  # the message comes back after the queue's timeout instead
        logger.warning("could not hide a webhook message", extra={"error": type(error).__name__})
    return seconds


@bp.on_sqs_message(queue=get_settings().webhooks_out_queue_name, batch_size=1)
def deliver_webhooks(event):
    started = time.monotonic()
    service = wiring.webhook_outbound_service()

    def one(record: SQSRecord) -> None:
        body = _delivery_message(record)
        if body.get("type") == "replay":
            queued = service.replay_page(
                str(body["subscription_id"]),
                str(body["replay_id"]),
                parse_rfc3339(str(body["since"])),
                int(body["page"]),
                body.get("start"),
            )
            logger.info("webhook replay page", extra={"replay_id": body["replay_id"], "queued": queued})
            return
        receives = int(record.attributes.approximate_receive_count or 1)
        outcome = service.deliver(
            str(body["subscription_id"]),
            str(body["delivery_id"]),
            int(body.get("retry") or 0),
            last_receive=receives >= MAX_RECEIVES,
        )
        logger.info(
            "webhook delivery",
            extra={"delivery_id": body["delivery_id"], "outcome": outcome.result, "delay_s": outcome.delay_s},
        )
        if outcome.delay_s is not None:
            raise RetryLater(_hide(record, outcome.delay_s, started))

    return _process_fifo(event, one, retries_expected=True)


# Sweep


@bp.schedule(Rate(1, unit=Rate.HOURS))
def sweep_webhook_deliveries(event):
    """Every hour: pending deliveries the queue gave up (dead-lettered, or past its retention)
    are marked failed, so that none stays pending for ever."""
    remaining = getattr(getattr(event, "context", None), "get_remaining_time_in_millis", None)
    left = remaining() / 1000 if callable(remaining) else 0.0
    deadline = Deadline(left - SWEEP_RESERVE_S) if left > 2 * SWEEP_RESERVE_S else None
    swept = wiring.webhook_outbound_service().sweep(deadline)
    logger.info(
        "webhook deliveries swept",
        extra={"failed": swept.failed, "skipped": swept.skipped, "finished": swept.finished},
    )
    return {"failed": swept.failed, "skipped": swept.skipped, "finished": swept.finished}
