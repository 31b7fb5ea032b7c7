"""Customers stream consumer: what follows a change to a customer's items.

- a new profile: publish `customer.created` (the profile as GET /customers/{id} shows it); a
  changed one: `customer.updated` with the fields clients see that changed (`changed`), none
  for a write that changes none of them (a version, `updated_at` or search words alone);
- a deleted profile: remove the customer's sign-in links, idempotency records, timeline and
  loyalty items (a pending change of email address too), export documents and export jobs,
  and close their cases (kept, closed with `closed_reason: customer_deleted`); an erased one:
  run the erasure's purge again, which deletes the cases too. The tombstone written with the
  removal publishes `customer.deleted`, or `customer.erased` for an erasure (also of a
  customer deleted before: `erased_at` added to the tombstone), never both; either carries
  the customer's id and the time only;
- a merged customer's deleted profile (an alias `MERGED` written with the removal): no purge,
  the merge job moves their items to the survivor; a new merge (`MERGE#<id>`): put it on the
  jobs queue as `{"merge_id"}` (events/jobs.py runs it);
- a changed loyalty tier: publish `loyalty.tier_changed` on the events queue;
- a new pending change of email address (a new nonce): ask the follow-up queue to mail its
  confirmation link (`{"type": "email.confirmation", "customer_id", "nonce"}`);
- a membership of a segment joined or left: publish `segment.joined` / `segment.left`;
- for the batch as a whole: queue the segment evaluations its profile and loyalty changes
  call for, and the backfill or clean-up of a segment created, changed or deleted
  (events/segments.py); and read the tombstones of the customers whose events carry personal
  data, so that a late record of a customer erased since publishes none (events/publishing.py).

Every step is idempotent (deleting what is gone, closing only what is not closed, conditional
on the case's version; publishing with the record's id as the de-duplication id), so a
redelivered record does no harm; failures are reported per record."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.events import events_from_customer_record
from chalicelib.domain.merges import RUNNING
from chalicelib.events.batch import process
from chalicelib.events.publishing import BatchPublisher
from chalicelib.events.segments import queue_changes_of_customers
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image
from chalicelib.store.keys import EMAIL_CHANGE_SK, MERGE_SK, PROFILE_SK

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

bp = Blueprint(__name__)


def _purge(customer_id: str) -> None:
    close_cases = wiring.case_service().close_cases_of_deleted_customer
    purged = wiring.erasure_service().after_deletion(customer_id, close_cases)
    if purged.erased:
        logger.info("erased customer data purged", extra={"customer_id": customer_id})
        return
    logger.info(
        "customer data purged",
        extra={
            "customer_id": customer_id,
            "interactions": purged.interactions,
            "cases_closed": purged.cases_closed,
        },
    )


def _ask_for_confirmation_mail(data: dict) -> None:
    """Once per nonce: the claim and the confirmation rewrite the item with the same nonce."""

    def nonce(image: dict) -> str | None:
        value = image.get("nonce")
        return value if isinstance(value, str) else None

    after = plain_image(data.get("NewImage")) or {}
    new = nonce(after)
    if new is None or new == nonce(plain_image(data.get("OldImage")) or {}):
        return
    customer_id = after["customer_id"]
    wiring.follow_up_queue().send({"type": "email.confirmation", "customer_id": customer_id, "nonce": new})
    logger.info("email confirmation asked for", extra={"customer_id": customer_id})


def _queue_merge(image: dict) -> None:
    """A merge just started: its moves run on the jobs queue (services/merge_job.py). Sent
    again for a redelivered record: a second run of a merge changes nothing."""
    merge_id = image.get("id")
    if isinstance(merge_id, str) and image.get("status") == RUNNING:
        wiring.job_queue().send({"merge_id": merge_id})
        logger.info("merge queued", extra={"merge_id": merge_id})


def _handle(record: DynamoDBRecord, publisher: BatchPublisher) -> None:
    raw = record.raw_event
    data = raw.get("dynamodb") or {}
    keys = plain_image(data.get("Keys")) or {}
    sk = keys.get("sk")
    if raw.get("eventName") == "REMOVE" and sk == PROFILE_SK:
        customer_id = keys["pk"].split("#", 1)[1]
        # Strongly consistent: written with the removal. A merged customer's items are moved
        # to the survivor by the merge job, not purged; its alias publishes customer.merged.
        if wiring.merge_moves().has_alias(customer_id):
            logger.info(
                "merged customer's profile removed: the merge moves the rest",
                extra={"customer_id": customer_id},
            )
            return
        # No event here: the tombstone's record, of the same transaction, publishes it.
        _purge(customer_id)
        return
    if sk == MERGE_SK and raw.get("eventName") == "INSERT":
        _queue_merge(plain_image(data.get("NewImage")) or {})
        return
    if sk == EMAIL_CHANGE_SK:
        _ask_for_confirmation_mail(data)
        return
    publisher.publish(record)


@bp.on_dynamodb_record(
    stream_arn=get_settings().customers_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def on_customer_change(event):
    # First, for the batch as a whole (all of it is delivered again if this fails; queueing
    # an evaluation twice changes nothing): the segment evaluations the batch calls for, and
    # which of its customers with events carrying personal data are erased.
    records = event.to_dict().get("Records", [])
    queue_changes_of_customers(records)
    publisher = BatchPublisher(records, events_from_customer_record)
    return process(event, lambda record: _handle(record, publisher), "streams")
