"""Inbound webhook consumer: `process_inbound_webhooks` makes each delivery queued by POST
/webhooks/{source_id} its interaction (services/webhook_inbound.py), and deletes what a
deleted source left: a page at a time while the invocation has time, then it puts the purge
back on the queue for the next invocation to go on.

A message that fails is received again after a backoff (30 s, 1, 2, 4 minutes); on its
MAX_RECEIVES-th receive the delivery is marked failed, with a reason the integrator reads at
GET /webhook-sources/{id}/deliveries, before the message goes on to the dead-letter queue (and
its alarm)."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import Deadline
from chalicelib.events.batch import back_off, process, time_left
from chalicelib.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# The webhooks-in queue's maxReceiveCount (infra/resources.json, WebhooksInQueue; a test compares).
MAX_RECEIVES = 5
# Time kept back from the invocation's for the batch's other records and the hand-over.
RESERVE_S = 10.0


class BadWebhookMessage(ValueError):
    pass


def _parsed(record: SQSRecord) -> tuple[str, str | None]:
    try:
        body = json.loads(record.body)
        source_id = body["source_id"]
        webhook_id = None if body.get("purge") is True else body["webhook_id"]
        if not isinstance(source_id, str) or not isinstance(webhook_id, str | None):
            raise TypeError(source_id)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadWebhookMessage(
            'a webhooks-in message needs a JSON body with source_id and webhook_id (or "purge": true)'
        ) from None
    return source_id, webhook_id


def _work(record: SQSRecord, deadline: Deadline) -> None:
    source_id, webhook_id = _parsed(record)
    receives = int(record.attributes.approximate_receive_count or 1)
    processor = wiring.inbound_webhook_processor()
    try:
        if webhook_id is None:
            removed = processor.purge(source_id, deadline)
            logger.info("webhook source purged", extra={"source_id": source_id, "removed": removed})
            return
        delivery = processor.process(source_id, webhook_id, last_receive=receives >= MAX_RECEIVES)
    except Exception as error:
        if webhook_id is not None and receives >= MAX_RECEIVES:
            with contextlib.suppress(Exception):
                processor.fail(source_id, webhook_id)
        logger.warning(
            "webhook delivery failed",
            extra={"source_id": source_id, "receives": receives, "error": type(error).__name__},
        )
        back_off(wiring.webhooks_in_queue(), record, receives)
        raise
    logger.info(
        "webhook delivery",
        extra={"source_id": source_id, "status": delivery.status if delivery else "gone"},
    )


@bp.on_sqs_message(queue=get_settings().webhooks_in_queue_name, batch_size=10)
def process_inbound_webhooks(event):
    deadline = time_left(event.context, RESERVE_S, most_of_it=0.5)
    return process(event, lambda record: _work(record, deadline), "sqs")
