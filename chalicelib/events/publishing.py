"""Turning a stream record into the events it implies, and publishing them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.domain.events import Event
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

Mapper = Callable[[str, str, Mapping | None, Mapping | None, datetime], list[Event]]


def publish_events_of(record: DynamoDBRecord, mapper: Mapper) -> None:
    raw = record.raw_event
    data = raw.get("dynamodb") or {}
    created = data.get("ApproximateCreationDateTime")
    at = datetime.fromtimestamp(float(created), UTC) if created is not None else wiring.clock.now()
    for event in mapper(
        raw.get("eventID") or data.get("SequenceNumber", ""),
        raw.get("eventName", ""),
        plain_image(data.get("OldImage")),
        plain_image(data.get("NewImage")),
        at,
    ):
        wiring.event_publisher().publish(event)
        logger.info("event published", extra={"event_type": event.type, "customer_id": event.subject})
