"""Interactions stream consumer: co-purchase counts (services/recommendations.py), exactly once
in effect. Only a purchase's new image counts: a removed interaction or a return takes no
pair back (a customer who bought both did buy them together once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.config import get_settings
from chalicelib.domain.loyalty.contributions import PoisonRecord, contribution_of
from chalicelib.events.batch import process_raw
from chalicelib.observability import logger
from chalicelib.store.attribute_values import UnreadableImage, plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

    from chalicelib.services.recommendations import PurchaseSeen

bp = Blueprint(__name__)


def purchase_of(record: dict) -> PurchaseSeen | None:
    """The purchase a Lambda stream record of the interactions table carries, if any;
    PoisonRecord for one that can never be read."""
    from chalicelib.services.recommendations import PurchaseSeen

    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    data = record.get("dynamodb") or {}
    try:
        image = plain_image(data.get("NewImage"))
    except UnreadableImage as error:
        raise PoisonRecord(str(error)) from None
    contribution = contribution_of(image)
    if contribution is None or contribution.kind != "purchase":
        return None
    customer_id = image.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise PoisonRecord("customer_id is missing")
    return PurchaseSeen(data.get("SequenceNumber", ""), customer_id, frozenset(contribution.skus))


def handle_batch(raw_event: dict, context) -> dict:
    from chalicelib import wiring

    purchases = []
    for record in raw_event.get("Records", []):
        try:
            purchase = purchase_of(record)
        except PoisonRecord as error:  # never readable: reported and skipped
            logger.warning("co-purchase record skipped", extra={"detail": str(error)})
            continue
        if purchase is not None:
            purchases.append(purchase)
    failures = wiring.recommendation_service().apply(purchases)

    def report(record: DynamoDBRecord) -> None:
        failure = failures.get(record.dynamodb.sequence_number if record.dynamodb else "")
        if failure is not None:
            logger.warning(
                "co-purchase record failed", extra={"reason": type(failure).__name__}, exc_info=failure
            )
            raise failure

    return process_raw(raw_event, context, report)


@bp.on_dynamodb_record(
    stream_arn=get_settings().interactions_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def count_co_purchases(event):
    return handle_batch(event.to_dict(), event.context)
