"""Job consumers: `start_jobs` puts each new job of the jobs table's stream on the jobs queue;
`run_jobs` does one job per invocation (services/jobs.py), or goes on with a merge's moves for
a `{"merge_id"}` message (services/merge_job.py; the customers stream queues each new merge).

A job message that fails is received again after a backoff (30 s, 1, 2, 4 minutes); on its
MAX_RECEIVES-th receive a failure marks the job failed, with the reason, before the message
goes on to the dead-letter queue (and its alarm). A job that cannot succeed (its customer is
gone) fails at once."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import Deadline
from chalicelib.domain.jobs import RUNNING
from chalicelib.events.batch import back_off, process, time_left
from chalicelib.observability import logger
from chalicelib.store.attribute_values import plain_image

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# The jobs queue's maxReceiveCount (infra/resources.json, JobsQueue; a test compares them).
MAX_RECEIVES = 5
# Time kept back from the invocation's: to stop at a batch boundary and hand the job on.
RESERVE_S = 30.0


class BadJobMessage(ValueError):
    pass


def _start(record: DynamoDBRecord) -> None:
    raw = record.raw_event
    if raw.get("eventName") != "INSERT":
        return
    image = plain_image((raw.get("dynamodb") or {}).get("NewImage")) or {}
    job_id = image.get("id")
    if image.get("status") != RUNNING or not isinstance(job_id, str):
        return
    wiring.job_queue().send({"job_id": job_id})
    logger.info("job queued", extra={"job_id": job_id})


@bp.on_dynamodb_record(
    stream_arn=get_settings().jobs_stream_arn, batch_size=100, starting_position="TRIM_HORIZON"
)
def start_jobs(event):
    return process(event, _start, "streams")


def _run(record: SQSRecord, deadline: Deadline) -> None:
    try:
        body = json.loads(record.body)
        merge_id = body.get("merge_id")
        job_id = body["job_id"] if merge_id is None else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadJobMessage("a job message needs a JSON body with job_id or merge_id") from None
    receives = int(record.attributes.approximate_receive_count or 1)
    if merge_id is not None:
        _run_merge(str(merge_id), record, receives, deadline)
        return
    try:
        outcome = wiring.job_service().run(job_id, deadline)
    except Exception as error:
        if receives >= MAX_RECEIVES:
            # The error's own message may quote data: the reason names its type only.
            reason = f"The job failed {receives} times; the last error was {type(error).__name__}."
            wiring.job_service().fail(job_id, reason)
            logger.exception("job failed", extra={"job_id": job_id, "receives": receives})
        else:
            logger.warning(
                "job attempt failed",
                extra={"job_id": job_id, "receives": receives, "error": type(error).__name__},
            )
            back_off(wiring.job_queue(), record, receives)
        raise
    logger.info("job run", extra={"job_id": job_id, "outcome": outcome})


def _run_merge(merge_id: str, record: SQSRecord, receives: int, deadline: Deadline) -> None:
    """A merge's moves (services/merge_job.py), resumed where they stopped. A failure on the
    last receive leaves the merge running (both customers stay marked: neither can be merged,
    deleted or erased meanwhile) and its message goes to the dead-letter queue, whose alarm
    calls for a look: redriving it resumes the merge at the step it stopped in."""
    try:
        outcome = wiring.merge_job().run(merge_id, deadline)
    except Exception as error:
        extra = {"merge_id": merge_id, "receives": receives, "error": type(error).__name__}
        if receives >= MAX_RECEIVES:
            logger.exception("merge job failed: it stays running until its message is redriven", extra=extra)
        else:
            logger.warning("merge job attempt failed", extra=extra)
            back_off(wiring.job_queue(), record, receives)
        raise
    logger.info("merge job run", extra={"merge_id": merge_id, "outcome": outcome})


@bp.on_sqs_message(queue=get_settings().jobs_queue_name, batch_size=1)
def run_jobs(event):
    deadline = time_left(event.context, RESERVE_S)
    return process(event, lambda record: _run(record, deadline), "sqs")
