"""Segment consumers (services/segments.py): the segments queue (evaluations, backfill pages,
the clean-up of a deleted segment) and the hourly review of the customers whose memberships
time alone can change. The customers and cases stream consumers call `queue_changes_of` with
their batches: a change to a profile, loyalty aggregates or cases queues the customer once per
batch, and a segment's new rules or deletion starts its backfill or clean-up."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

from chalice import Blueprint, Rate

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.events.batch import process
from chalicelib.observability import logger
from chalicelib.store.attribute_values import UnreadableImage, plain_image
from chalicelib.store.keys import LOYALTY_SK, PROFILE_SK, SEGMENTS_PK

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# What the rules read of a profile: a change elsewhere (a name, a phone) changes no membership.
PROFILE_FIELDS = ("locale", "tags", "marketing_consent")


class BadSegmentMessage(ValueError):
    pass


def _images(records: Iterable[dict]) -> Iterator[tuple[str, dict, dict, dict]]:
    """Each record's event name, keys, old and new image; a record no stream delivers (an
    image that is not a map) is skipped here: the consumer's own step reports it."""
    for record in records:
        data = record.get("dynamodb") or {}
        try:
            images = [plain_image(data.get(part)) or {} for part in ("Keys", "OldImage", "NewImage")]
        except UnreadableImage:
            continue
        yield (record.get("eventName", ""), *images)


def queue_changes_of_customers(records: Iterable[dict]) -> None:
    """From a batch of the customers stream: customers whose profile or loyalty changed, and
    segments created, given new rules or deleted."""
    customers: set[str] = set()
    service = None
    for name, keys, old, new in _images(records):
        pk, sk = str(keys.get("pk", "")), keys.get("sk")
        if pk == SEGMENTS_PK:
            service = service or wiring.membership_service()
            if name == "REMOVE":
                service.segment_deleted(str(sk))
            elif isinstance(new.get("build"), Decimal) and (
                name == "INSERT" or old.get("build") != new["build"]
            ):
                service.build_started(str(sk), int(new["build"]))
            continue
        if name == "REMOVE" or not pk.startswith("CUSTOMER#"):
            continue
        if sk == LOYALTY_SK or (
            sk == PROFILE_SK and (name == "INSERT" or any(old.get(f) != new.get(f) for f in PROFILE_FIELDS))
        ):
            customers.add(pk.removeprefix("CUSTOMER#"))
    if customers:
        (service or wiring.membership_service()).customers_changed(customers)


def queue_changes_of_cases(records: Iterable[dict]) -> None:
    """From a batch of the cases stream: the customers whose case opened or changed status."""
    customers: set[str] = set()
    cases: set[str] = set()
    for name, _, old, new in _images(records):
        image = new or old
        changed = name in ("INSERT", "REMOVE") or old.get("status") != new.get("status")
        if changed and isinstance(image.get("customer_id"), str) and isinstance(image.get("id"), str):
            customers.add(image["customer_id"])
            cases.add(image["id"])
    if customers:
        wiring.membership_service().customers_changed(customers, cases)


def _work(record: SQSRecord) -> None:
    try:
        body = json.loads(record.body)
        kind = body["type"]
        if kind == "evaluate":
            customer_ids, case_ids = (
                [str(c) for c in body["customer_ids"]],
                [str(c) for c in body.get("case_ids") or ()],
            )
        elif kind in ("build", "drop"):
            segment_id = str(body["segment_id"])
        else:
            raise KeyError(kind)
    except (ValueError, KeyError, TypeError):
        raise BadSegmentMessage(
            'a segments message needs a JSON body with type "evaluate" (customer_ids), "build" '
            '(segment_id, build, page, start) or "drop" (segment_id)'
        ) from None
    service = wiring.membership_service()
    if kind == "evaluate":
        changed = service.evaluate(customer_ids, case_ids)
        logger.info(
            "segment memberships evaluated", extra={"customers": len(customer_ids), "changed": changed}
        )
    elif kind == "build":
        outcome = service.build_page(segment_id, int(body["build"]), int(body["page"]), body.get("start"))
        logger.info(
            "segment backfill page",
            extra={"segment_id": segment_id, "page": body["page"], "outcome": outcome},
        )
    else:
        finished = service.drop(segment_id)
        logger.info(
            "deleted segment's members removed", extra={"segment_id": segment_id, "finished": finished}
        )


@bp.on_sqs_message(queue=get_settings().segments_queue_name, batch_size=2)
def maintain_segments(event):
    return process(event, _work, "sqs")


@bp.schedule(Rate(1, unit=Rate.HOURS))
def review_segments(event):
    """Every hour: queue the customers whose repurchase or inactivity threshold has passed."""
    queued = wiring.membership_service().review_due()
    logger.info("segment reviews queued", extra={"customers": queued})
    return {"queued": queued}
