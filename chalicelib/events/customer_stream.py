"""Customers stream consumer: what follows a change to a customer's items.

- a deleted (or erased) profile: remove the customer's idempotency records, timeline, loyalty
  items, cases, export documents and export jobs;
- a changed loyalty tier: publish `loyalty.tier_changed` on the events queue.

Every step is idempotent (deleting what is gone, publishing with the record's id as the
de-duplication id), so a redelivered record does no harm; failures are reported per record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.config import get_settings
from chalicelib.domain.events import events_from_customer_record
from chalicelib.domain.jobs import EXPORT
from chalicelib.events.batch import process
from chalicelib.events.publishing import publish_events_of
from chalicelib.observability import logger
from chalicelib.store.keys import PROFILE_SK

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

bp = Blueprint(__name__)


def _purge(customer_id: str) -> None:
    customers, interactions = deps.repositories()
    if customers.erased_at(customer_id):
        # Erased (GDPR): the same purge the erase request ran, again, in case it was cut short.
        deps.erasure_service().purge(customer_id)
        logger.info("erased customer data purged", extra={"customer_id": customer_id})
        return
    deps.idempotency_pointers().forget(customer_id)
    removed = interactions.delete_all_of(customer_id)
    deps.loyalty_repository().delete_all_of(customer_id)
    deps.case_repository().delete_all_of(customer_id)
    deps.export_documents().delete_all_of(customer_id)
    deps.job_repository().delete_all_of(customer_id, EXPORT)
    logger.info("customer data purged", extra={"customer_id": customer_id, "interactions": removed})


def _handle(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    data = raw.get("dynamodb") or {}
    keys = data.get("Keys") or {}
    sk = (keys.get("sk") or {}).get("S")
    if raw.get("eventName") == "REMOVE" and sk == PROFILE_SK:
        _purge(keys["pk"]["S"].split("#", 1)[1])
        return
    publish_events_of(record, events_from_customer_record)


@bp.on_dynamodb_record(
    stream_arn=get_settings().customers_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def on_customer_change(event):
    return process(event, _handle, "streams")
