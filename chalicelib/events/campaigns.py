"""Campaign consumers (services/campaign_runs.py): the campaigns table's stream puts each new
run on the campaigns queue; the queue's consumer starts runs, walks their segment and delivers;
a schedule every minute starts the runs of the campaigns that are due (services/campaigns.py).

A message that fails is received again after a backoff (30 s, 1, 2, 4 minutes); on its
MAX_RECEIVES-th receive a delivery records the customers it still could not decide as
`failed` before the message goes on to the dead-letter queue (and its alarm), so a poison
message never holds a run open and never blocks the messages behind it."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING

from chalice import Blueprint, Rate

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.events.batch import back_off, process
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# The campaigns queue's maxReceiveCount (infra/resources.json, CampaignsQueue; a test compares).
MAX_RECEIVES = 5


class BadCampaignMessage(ValueError):
    pass


def _queue_run(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    if raw.get("eventName") != "INSERT":
        return
    image = plain_image((raw.get("dynamodb") or {}).get("NewImage")) or {}
    if not str(image.get("sk", "")).startswith("RUN#") or image.get("status") != "queued":
        return
    wiring.campaign_run_service().queued(str(image["campaign_id"]), str(image["id"]))
    logger.info("campaign run queued", extra={"run_id": image["id"], "campaign_id": image["campaign_id"]})


@bp.on_dynamodb_record(
    stream_arn=get_settings().campaigns_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def start_campaign_runs(event):
    return process(event, _queue_run, "streams")


def _parsed(record: SQSRecord) -> dict:
    try:
        body = json.loads(record.body)
        kind = body["type"]
        if kind not in ("start", "walk", "deliver"):
            raise KeyError(kind)
        str(body["campaign_id"]), str(body["run_id"])
        if kind == "walk":
            int(body["shard"]), int(body["page"])
        if kind == "deliver" and not isinstance(body["customer_ids"], list):
            raise TypeError("customer_ids")
    except (ValueError, KeyError, TypeError):
        raise BadCampaignMessage(
            'a campaigns message needs a JSON body with type "start", "walk" (shard, page, start) or '
            '"deliver" (customer_ids), campaign_id and run_id'
        ) from None
    return body


def _work(record: SQSRecord) -> None:
    body = _parsed(record)
    receives = int(record.attributes.approximate_receive_count or 1)
    service = wiring.campaign_run_service()
    campaign_id, run_id = str(body["campaign_id"]), str(body["run_id"])
    try:
        if body["type"] == "start":
            outcome = service.start(campaign_id, run_id)
        elif body["type"] == "walk":
            outcome = service.walk(
                campaign_id, run_id, int(body["shard"]), int(body["page"]), body.get("start")
            )
        else:
            customer_ids = [str(c) for c in body["customer_ids"]]
            outcome = service.deliver(
                campaign_id, run_id, customer_ids, last_receive=receives >= MAX_RECEIVES
            )
    except Exception as error:
        if body["type"] == "deliver" and receives >= MAX_RECEIVES:
            # The error's own message may quote data: the reason names its type only.
            with contextlib.suppress(Exception):
                service.fail_undecided(campaign_id, run_id, customer_ids, type(error).__name__)
        logger.warning(
            "campaign message failed",
            extra={
                "type": body["type"],
                "run_id": run_id,
                "receives": receives,
                "error": type(error).__name__,
            },
        )
        back_off(wiring.campaigns_queue(), record, receives)
        raise
    logger.info("campaign message", extra={"type": body["type"], "run_id": run_id, "outcome": outcome})


@bp.on_sqs_message(queue=get_settings().campaigns_queue_name, batch_size=5)
def deliver_campaigns(event):
    return process(event, _work, "sqs")


@bp.schedule(Rate(1, unit=Rate.MINUTES))
def start_due_campaigns(event):
    """Every minute: start the runs of the active campaigns whose next run is due."""
    started = wiring.campaign_service().start_due()
    logger.info("scheduled campaign runs started", extra={"runs": len(started)})
    return {"started": started}
