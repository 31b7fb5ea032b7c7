"""Complaint case consumers: open cases from the interactions stream, acknowledge them from
the follow-up queue, escalate missed deadlines every five minutes, and publish case events
from the cases stream (`case.opened`, `case.status_changed`, `case.escalated`). Each reports
failures per record (Powertools batch processing).

`open_cases` also publishes `interaction.created` for each new interaction, before it opens a
complaint's case (so a customer's `interaction.created` precedes its `case.opened` on the
events queue): of the interactions stream's two consumers it is the one that handles a record
at a time (`update_loyalty` coalesces a batch per customer), and a redelivered record
publishes the same event again, de-duplicated by its record's id.

The follow-up queue also carries `email.confirmation` messages (the link that confirms a
customer's new address, services/email_change.py)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalice import Blueprint, Rate

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import parse_rfc3339
from chalicelib.domain.events import events_from_case_record, events_from_interaction_record
from chalicelib.domain.interactions import Interaction
from chalicelib.events.batch import process
from chalicelib.events.publishing import BatchPublisher
from chalicelib.events.segments import queue_changes_of_cases
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)


class BadFollowUp(ValueError):
    pass


def _complaint(record: DynamoDBRecord) -> Interaction | None:
    raw = record.raw_event
    if raw.get("eventName") != "INSERT":
        return None
    image = plain_image((raw.get("dynamodb") or {}).get("NewImage")) or {}
    if image.get("type") != "complaint":
        return None
    if image.get("merged_from") and _has_case(image):
        # Moved by a merge: its case was opened (under the merged customer) and moves too.
        return None
    text = {name: value for name, value in image.items() if isinstance(value, str)}
    opened = text.get("occurred_at") or text.get("created_at")
    return Interaction(
        id=text["id"],
        customer_id=text["customer_id"],
        type="complaint",
        channel=text.get("channel") or "web",
        occurred_at=parse_rfc3339(opened),
        created_at=parse_rfc3339(text.get("created_at") or opened),
        severity=text.get("severity"),
        subject=text.get("subject"),
        import_id=text.get("import_id"),
    )


def _has_case(image: dict) -> bool:
    """Whether the complaint's case exists (its id derives from the complaint's). A complaint
    moved before its customer's case was opened (its record came after the merge started, and
    found no profile) has none: it is opened for the survivor then, once like any case."""
    from chalicelib.domain.cases import case_id_for

    interaction_id = image.get("id")
    return (
        isinstance(interaction_id, str)
        and wiring.case_repository().get(case_id_for(interaction_id)) is not None
    )


def _on_interaction(record: DynamoDBRecord, publisher: BatchPublisher) -> None:
    publisher.publish(record)
    complaint = _complaint(record)
    if complaint is not None:
        case = wiring.case_service().open_for_complaint(complaint)
        if case is not None:
            logger.info("case opened", extra={"case_id": case.id, "severity": case.severity})


@bp.on_dynamodb_record(
    stream_arn=get_settings().interactions_stream_arn, batch_size=25, starting_position="TRIM_HORIZON"
)
def open_cases(event):
    publisher = BatchPublisher(event.to_dict().get("Records", []), events_from_interaction_record)
    return process(event, lambda record: _on_interaction(record, publisher), "streams")


def _follow_up(record: SQSRecord) -> None:
    try:
        body = json.loads(record.body)
        if body.get("type") == "email.confirmation":
            link = (str(body["customer_id"]), str(body["nonce"]))
        else:
            link, case_id = None, body["case_id"]
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadFollowUp(
            "a follow-up message needs a JSON body with case_id, or customer_id and nonce"
        ) from None
    if link is not None:
        _send_confirmation_link(*link)
        return
    case = wiring.case_service().acknowledge(case_id)
    logger.info("case followed up", extra={"case_id": case.id, "contact_status": case.contact_status})


def _send_confirmation_link(customer_id: str, nonce: str) -> None:
    outcome = wiring.email_change_service().send_link(customer_id, nonce)
    logger.info("email confirmation followed up", extra={"customer_id": customer_id, "outcome": outcome})


@bp.on_sqs_message(queue=get_settings().follow_up_queue_name, batch_size=10)
def send_follow_ups(event):
    return process(event, _follow_up, "sqs")


@bp.schedule(Rate(5, unit=Rate.MINUTES))
def escalate_overdue_cases(event):
    """Every five minutes: escalate the active cases past a deadline (by_due index)."""
    escalated = wiring.case_service().escalate_overdue()
    logger.info("overdue cases escalated", extra={"cases": escalated})
    return {"escalated": escalated}


@bp.on_dynamodb_record(
    stream_arn=get_settings().cases_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def on_case_change(event):
    records = event.to_dict().get("Records", [])
    queue_changes_of_cases(records)  # segments' open_complaints
    return process(event, BatchPublisher(records, events_from_case_record).publish, "streams")
