"""Customers stream consumer: when a profile is deleted, remove the customer's timeline.

Deleting is idempotent, so a redelivered record does no harm; each record is handled on its
own and failures are reported per record (Powertools batch processing)."""

from __future__ import annotations

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
    DynamoDBRecord,
    DynamoDBRecordEventName,
)
from chalice import Blueprint

from chalicelib.api.deps import repositories
from chalicelib.config import get_settings
from chalicelib.observability import logger
from chalicelib.store.models import PROFILE_SK

bp = Blueprint(__name__)
_processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _purge(record: DynamoDBRecord) -> None:
    if record.event_name is not DynamoDBRecordEventName.REMOVE:
        return
    keys = record.dynamodb.keys if record.dynamodb else {}
    if keys.get("sk") != PROFILE_SK:
        return
    customer_id = keys["pk"].split("#", 1)[1]
    _, interactions = repositories()
    removed = interactions.delete_all_of(customer_id)
    logger.info("customer timeline purged", extra={"customer_id": customer_id, "interactions": removed})


@bp.on_dynamodb_record(
    stream_arn=get_settings().customers_stream_arn, batch_size=25, starting_position="TRIM_HORIZON"
)
def purge_deleted_customers(event):
    return process_partial_response(
        event=event.to_dict(), record_handler=_purge, processor=_processor, context=event.context
    )
