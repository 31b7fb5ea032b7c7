"""Turning the stream records of a batch into the events they imply, and publishing them.

The stream is read behind the writes (by a second, or by hours after a consumer failed), so a
record can be of a customer erased since: its events that carry personal data
(domain/events.PERSONAL) are not published, and nothing of an erased customer reaches the
events queue again. The batch's customers with such events are looked up once, in one
BatchGetItem of their tombstones (none when the batch has no such events). Publishing is
idempotent: an event's id is its record's, the queue's de-duplication id."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib import wiring
from chalicelib.domain.clock import parse_rfc3339
from chalicelib.domain.events import PERSONAL, Event
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

Mapper = Callable[[str, str, Mapping | None, Mapping | None, datetime], list[Event]]


def _record_id(raw: dict) -> str:
    return raw.get("eventID") or (raw.get("dynamodb") or {}).get("SequenceNumber", "")


def events_of(raw: dict, mapper: Mapper) -> list[Event]:
    """The events of one stream record in Lambda's shape."""
    data = raw.get("dynamodb") or {}
    created = data.get("ApproximateCreationDateTime")
    approximate = datetime.fromtimestamp(float(created), UTC) if created is not None else wiring.clock.now()
    new = plain_image(data.get("NewImage"))
    return mapper(
        _record_id(raw),
        raw.get("eventName", ""),
        plain_image(data.get("OldImage")),
        new,
        _written_at(new, approximate),
    )


# The time a written item carries (its own `updated_at`, else `created_at`) is when the event
# happened, to the millisecond; the stream's ApproximateCreationDateTime is whole seconds (a whole
# minute on DynamoDB Local). An item's time further than this from the stream's is not this
# write's (an attribute the write did not touch): the stream's time is taken.
_WRITE_TIME_SLACK = timedelta(seconds=90)


def _written_at(image: dict | None, approximate: datetime) -> datetime:
    for name in ("updated_at", "created_at"):
        value = (image or {}).get(name)
        if isinstance(value, str):
            try:
                moment = parse_rfc3339(value)
            except ValueError:
                continue
            if abs(moment - approximate) <= _WRITE_TIME_SLACK:
                return moment
    return approximate


class BatchPublisher:
    """Publishes the events of the records of one batch (`publish`, a record handler)."""

    def __init__(self, records: Iterable[dict], mapper: Mapper) -> None:
        self._mapper = mapper
        self._events: dict[str, list[Event]] = {}
        for raw in records:
            # An unreadable record fails alone, when its turn comes (`publish`).
            with contextlib.suppress(Exception):
                self._events[_record_id(raw)] = events_of(raw, mapper)
        self._erased: set[str] = set()
        self._looked_up: set[str] = set()
        self._look_up(e for events in self._events.values() for e in events)

    def _look_up(self, events: Iterable[Event]) -> None:
        wanted = {e.subject for e in events if e.type in PERSONAL and e.subject} - self._looked_up
        if wanted:
            customers, _ = wiring.repositories()
            self._erased |= customers.erased_among(wanted)
            self._looked_up |= wanted

    def publish(self, record: DynamoDBRecord) -> None:
        raw = record.raw_event
        events = self._events.get(_record_id(raw))
        if events is None:
            events = events_of(raw, self._mapper)
            self._look_up(events)
        for event in events:
            if event.type in PERSONAL and event.subject in self._erased:
                logger.info(
                    "event of an erased customer not published",
                    extra={"event_type": event.type, "customer_id": event.subject},
                )
                continue
            wiring.event_publisher().publish(event)
            logger.info("event published", extra={"event_type": event.type, "customer_id": event.subject})
