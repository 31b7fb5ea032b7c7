"""Interactions stream consumer: loyalty aggregates and purchase habits, exactly once in effect.

The whole batch is parsed first and applied per customer (one read of each customer's
aggregates, guards and touched habits per batch, and one write while they fit a transaction);
Powertools batch processing then reports each record that failed in `batchItemFailures`, so
one bad record neither blocks nor rolls back the others, and whatever fails for one customer
fails that customer's records only.

The same batch also feeds the co-purchase counts (events/recommendations.py): a stream shard
is best read by at most two consumers, and this and open_cases are those two. Both are
idempotent, so a record that failed in either is reported, delivered again, and counted by
neither twice: `batchItemFailures` is the union of both failures."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from chalice import Blueprint, Rate

from chalicelib.config import get_settings
from chalicelib.domain import storage
from chalicelib.domain.clock import Deadline
from chalicelib.domain.loyalty.contributions import PoisonRecord, contribution_of
from chalicelib.errors import TooLargeToStore
from chalicelib.events.batch import process_raw
from chalicelib.events.recommendations import purchase_of
from chalicelib.observability import logger
from chalicelib.store.attribute_values import UnreadableImage, plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    from chalicelib.services.loyalty import InteractionChange


bp = Blueprint(__name__)


def read_image(image: dict | None) -> dict | None:
    """A stream image (or its keys) as plain values; PoisonRecord when it is not a map."""
    try:
        return plain_image(image)
    except UnreadableImage as error:
        raise PoisonRecord(str(error)) from None


def parse(record: dict) -> InteractionChange:
    """A Lambda DynamoDB stream record of the interactions table → the change it makes."""
    from chalicelib.services import loyalty as service

    name = record.get("eventName")
    data = record.get("dynamodb") or {}
    if name not in ("INSERT", "MODIFY", "REMOVE"):
        raise PoisonRecord(f"unknown eventName {name!r}")
    removed = name == "REMOVE"
    keys = read_image(data.get("Keys") or {})
    image = read_image(data.get("OldImage") if removed else data.get("NewImage"))
    customer_id, interaction_id = keys.get("customer_id"), keys.get("id")
    version = (image or {}).get("version", Decimal(0))
    if not isinstance(customer_id, str) or not isinstance(interaction_id, str):
        raise PoisonRecord("record keys unreadable: customer_id and id must be strings")
    if not isinstance(version, Decimal) or version != version.to_integral_value():
        raise PoisonRecord("version unreadable: it must be a whole number")
    if image is None:
        raise PoisonRecord("the stream record carries no image (the stream must be NEW_AND_OLD_IMAGES)")
    return service.InteractionChange(
        record_id=data.get("SequenceNumber", ""),
        customer_id=customer_id,
        interaction_id=interaction_id,
        version=int(version),
        contribution=contribution_of(image),
        removed=removed,
    )


# Kept back from the invocation's time: the failures of what is left are reported, not a timeout.
RESERVE_S = 5.0


def _seconds_left(context) -> float:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return remaining() / 1000 if callable(remaining) else 0.0


def handle_batch(raw_event: dict, context) -> dict:
    from chalicelib import wiring

    failures: dict[str, Exception] = {}
    changes, purchases = [], []
    for record in raw_event.get("Records", []):
        sequence = (record.get("dynamodb") or {}).get("SequenceNumber", "")
        try:
            changes.append(parse(record))
            purchase = purchase_of(record)
        except Exception as error:  # a record of a shape no stream delivers fails alone too
            failures[sequence] = error
            continue
        if purchase is not None:
            purchases.append(purchase)
    failures.update(wiring.loyalty_service().apply(changes))
    left = _seconds_left(context)
    # A context too short to keep the reserve in (the test client's 3 s) runs without a deadline.
    deadline = Deadline(left - RESERVE_S) if left > 2 * RESERVE_S else None
    for sequence, error in wiring.recommendation_service().apply(purchases, deadline).items():
        failures.setdefault(sequence, error)
    expected = (PoisonRecord, storage.NotFound, storage.VersionConflict, TooLargeToStore)

    def report(record: DynamoDBRecord) -> None:
        failure = failures.get(record.dynamodb.sequence_number if record.dynamodb else "")
        if failure is not None:
            logger.warning(
                "interaction record failed",
                extra={"reason": type(failure).__name__, "detail": str(failure)},
                exc_info=None if isinstance(failure, expected) else failure,
            )
            raise failure

    return process_raw(raw_event, context, report)


@bp.on_dynamodb_record(
    stream_arn=get_settings().interactions_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def update_loyalty(event):
    return handle_batch(event.to_dict(), event.context)


@bp.schedule(Rate(1, unit=Rate.DAYS))
def refresh_loyalty_tiers(event):
    """Recency decays without writes: once a day, store the tier of the customers whose tier
    has changed since (and only those: the by_tier_review index names them)."""
    from chalicelib import wiring

    refreshed = wiring.loyalty_service().refresh_due_tiers()
    logger.info("loyalty tiers refreshed", extra={"customers": refreshed})
    return {"refreshed": refreshed}
