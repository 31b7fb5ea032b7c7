"""Import consumers: `start_imports` takes the imports bucket's ObjectCreated events (S3's own
event JSON in each SQS message) and starts the import the object's key names; `run_imports`
runs one chunk of an import a message, or goes on planning one (services/imports.py).

Every message may come twice: starting is a conditional change of status, a chunk's rows and
totals are written once each. A message that keeps failing goes to its dead-letter queue (and
its alarm) after 5 receives; a chunk left there keeps its import `processing` until redriven."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import unquote_plus

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.clock import Deadline
from chalicelib.domain.imports import import_id_of_key
from chalicelib.events.batch import back_off, process, time_left
from chalicelib.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

bp = Blueprint(__name__)

# Time kept back from the invocation's, for planning to hand on before it is up.
RESERVE_S = 30.0


class BadImportMessage(ValueError):
    pass


def _uploaded(record: SQSRecord, deadline: Deadline) -> None:
    try:
        event = json.loads(record.body)
    except ValueError:
        raise BadImportMessage("an upload message must be S3's event JSON") from None
    if not isinstance(event, dict) or event.get("Event") == "s3:TestEvent":
        return  # S3 sends one when the notification is configured
    for s3_record in event.get("Records") or []:
        if not str(s3_record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        obj = (s3_record.get("s3") or {}).get("object") or {}
        import_id = import_id_of_key(unquote_plus(str(obj.get("key", ""))))
        if import_id is None:
            logger.warning("object of no import", extra={"key_length": len(str(obj.get("key", "")))})
            continue
        outcome = wiring.import_service().start(import_id, int(obj.get("size") or 0), deadline)
        logger.info("import upload", extra={"import_id": import_id, "outcome": outcome})


@bp.on_sqs_message(queue=get_settings().import_uploads_queue_name, batch_size=1)
def start_imports(event):
    deadline = time_left(event.context, RESERVE_S)
    return process(event, lambda record: _uploaded(record, deadline), "sqs")


def _run(record: SQSRecord, deadline: Deadline) -> None:
    from chalicelib.domain.import_formats import Chunk

    try:
        body = json.loads(record.body)
        import_id = str(body["import_id"])
        chunk = Chunk(**body["chunk"]) if "chunk" in body else None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise BadImportMessage("an import message needs import_id and a chunk or plan") from None
    receives = int(record.attributes.approximate_receive_count or 1)
    service = wiring.import_service()
    try:
        if chunk:
            outcome = service.run_chunk(import_id, chunk, retrying=receives > 1)
        else:
            outcome = service.plan(import_id, deadline)
    except Exception as error:
        extra = {"import_id": import_id, "receives": receives, "error": type(error).__name__}
        logger.warning("import message failed", extra=extra)
        back_off(wiring.import_queue(), record, receives)
        raise
    logger.info(
        "import chunk" if chunk else "import planned",
        extra={"import_id": import_id, "chunk": chunk.index if chunk else None, "outcome": outcome},
    )


@bp.on_sqs_message(queue=get_settings().imports_queue_name, batch_size=1)
def run_imports(event):
    deadline = time_left(event.context, RESERVE_S)
    return process(event, lambda record: _run(record, deadline), "sqs")
