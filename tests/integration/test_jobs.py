"""Erasure and export jobs through their consumers: `start_jobs` (the jobs table's stream) puts a
job on the jobs queue, `run_jobs` does it. Messages are delivered here the way Lambda delivers
them (a record per message, deleted when the handler reports no failure), so that a test can
choose the invocation's remaining time, redeliver a message or count its receives."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from chalicelib.config import get_settings
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from tests.functional.conftest import Api, assert_problem, bulk_interactions
from tests.integration.streams import stream_records

INFRA = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _context(seconds: float) -> LambdaContext:
    return LambdaContext(
        "run_jobs", 1024, "arn:aws:lambda:eu-north-1:123456789012:function:run_jobs", int(seconds * 1000)
    )


def _queue() -> tuple[object, str, str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().jobs_queue_name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _start_jobs(chalice_app) -> None:
    """The jobs table's new records through `start_jobs`, as its event source mapping would."""
    records = stream_records(get_settings().jobs_table)
    assert records
    assert chalice_app.handler_map["start_jobs"]({"Records": records}, _context(30)) == {
        "batchItemFailures": []
    }


def _receive() -> list[dict]:
    sqs, url, arn = _queue()
    messages = sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
    ).get("Messages", [])
    return [lambda_sqs_record(m, arn) for m in messages]


def _deliver(chalice_app, record: dict, seconds: float = 60) -> bool:
    """One invocation of `run_jobs` with `record`; the message is deleted if it succeeded. (A
    batch whose every record failed raises: Lambda retries the whole batch.)"""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    try:
        reply = chalice_app.handler_map["run_jobs"]({"Records": [record]}, _context(seconds))
    except BatchProcessingError:
        return False
    failed = bool(reply["batchItemFailures"])
    if not failed:
        sqs, url, _ = _queue()
        sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return not failed


def _timeline_size(customer_id: str) -> int:
    from chalicelib.store.models import InteractionModel

    return InteractionModel.count(customer_id)


def test_an_erasure_out_of_time_hands_itself_on_and_the_next_invocation_completes_it(api, chalice_app, pump):
    cid = api.create_customer(name="Pirkko Järvinen", email="pirkko@example.fi")["id"]
    bulk_interactions(cid, 40)
    job = api.post(f"/customers/{cid}/erase").json
    _start_jobs(chalice_app)
    [record] = _receive()

    # An invocation with no time left does a batch and hands the job on to a new message.
    assert _deliver(chalice_app, record, seconds=0.001)
    assert api.get(f"/jobs/{job['id']}").json["status"] == "running"
    assert_problem(api.get(f"/customers/{cid}"), 404)  # step 1 is done: the erasure is visible
    assert 0 < _timeline_size(cid) < 40
    [handed_on] = _receive()
    assert json.loads(handed_on["body"]) == {"job_id": job["id"]}

    assert _deliver(chalice_app, handed_on)
    assert _timeline_size(cid) == 0
    done = api.get(f"/jobs/{job['id']}").json
    assert done["status"] == "completed" and done["completed_at"]
    pump.drain(timeout=60)
    assert _receive() == []


def test_a_completed_job_delivered_again_changes_nothing(api, chalice_app, pump):
    from chalicelib.store.models import AuditModel, customer_pk

    cid = api.create_customer(name="Ana Horvat")["id"]
    job = api.post(f"/customers/{cid}/erase").json
    pump.drain(timeout=60)
    done = api.get(f"/jobs/{job['id']}").json
    assert done["status"] == "completed"

    sqs, url, _ = _queue()
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"job_id": job["id"]}))
    [again] = _receive()
    assert _deliver(chalice_app, again)

    assert api.get(f"/jobs/{job['id']}").json == done
    erasures = [e for e in AuditModel.query(customer_pk(cid)) if e.action == "erase"]
    assert len(erasures) == 1


def test_an_erasure_that_crashed_after_its_first_step_resumes_and_completes_when_redelivered(
    api, chalice_app, monkeypatch
):
    from chalicelib.store.interactions import InteractionRepository

    cid = api.create_customer(name="Matti Virtanen", email="matti@example.fi")["id"]
    bulk_interactions(cid, 30)
    job = api.post(f"/customers/{cid}/erase").json
    _start_jobs(chalice_app)
    [record] = _receive()

    original = InteractionRepository.delete_all_of

    def crash(self, *args, **kwargs):
        raise ConnectionError("the invocation died here")

    monkeypatch.setattr(InteractionRepository, "delete_all_of", crash)
    assert not _deliver(chalice_app, record)
    assert api.get(f"/jobs/{job['id']}").json["status"] == "running"
    assert_problem(api.get(f"/customers/{cid}"), 404)
    assert _timeline_size(cid) == 30

    monkeypatch.setattr(InteractionRepository, "delete_all_of", original)
    record["attributes"]["ApproximateReceiveCount"] = "2"  # SQS delivers it again
    assert _deliver(chalice_app, record)
    assert _timeline_size(cid) == 0
    assert api.get(f"/jobs/{job['id']}").json["status"] == "completed"


def test_a_job_failing_on_its_last_receive_is_marked_failed_with_a_reason(api, chalice_app, monkeypatch):
    from chalicelib.events.jobs import MAX_RECEIVES
    from chalicelib.store.exports import ExportDocuments

    cid = api.create_customer(name="Nguyễn Văn An")["id"]
    job = api.post(f"/customers/{cid}/exports").json
    _start_jobs(chalice_app)
    [record] = _receive()

    def unavailable(self, *args, **kwargs):
        raise ConnectionError("S3 is unreachable")

    monkeypatch.setattr(ExportDocuments, "write", unavailable)
    record["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVES - 1)
    assert not _deliver(chalice_app, record)
    assert api.get(f"/jobs/{job['id']}").json["status"] == "running"  # retried later

    record["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVES)
    assert not _deliver(chalice_app, record)  # reported failed: SQS moves it to the DLQ
    failed = api.get(f"/jobs/{job['id']}").json
    assert (failed["status"], failed["completed_at"], failed["result"]) == ("failed", None, None)
    assert failed["failed_at"] and "5 times" in failed["reason"] and "ConnectionError" in failed["reason"]
    assert "unreachable" not in failed["reason"]


def test_the_consumer_marks_failed_after_as_many_receives_as_the_queue_allows():
    from chalicelib.events.jobs import MAX_RECEIVES

    queue = INFRA["Resources"]["JobsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES


def test_an_export_of_a_customer_deleted_before_it_ran_fails_at_once_and_an_erasure_completes(
    api, chalice_app
):
    cid = api.create_customer(name="Maria Santos")["id"]
    export = api.post(f"/customers/{cid}/exports").json
    assert api.delete(f"/customers/{cid}").status == 204
    _start_jobs(chalice_app)
    [record] = _receive()

    assert _deliver(chalice_app, record)  # not retried: it cannot succeed
    failed = api.get(f"/jobs/{export['id']}").json
    assert failed["status"] == "failed" and "deleted before the export ran" in failed["reason"]

    erasure = api.post(f"/customers/{cid}/erase").json
    _start_jobs(chalice_app)
    for record in _receive():  # the stream again: the failed export is skipped
        assert _deliver(chalice_app, record)
    assert api.get(f"/jobs/{erasure['id']}").json["status"] == "completed"  # what was left is erased


def test_asking_again_while_a_job_runs_gets_the_running_job_and_after_it_a_new_one(api, pump):
    cid = api.create_customer(name="Juan dela Cruz")["id"]
    first = api.post(f"/customers/{cid}/exports")
    again = api.post(f"/customers/{cid}/exports")
    assert first.status == again.status == 202
    assert again.json["id"] == first.json["id"] and again.headers["location"] == first.headers["location"]
    mine = api.as_role("customer", cid).post("/me/exports")
    assert mine.json["id"] == first.json["id"] and mine.headers["location"] == f"/me/jobs/{first.json['id']}"
    pump.drain(timeout=60)

    later = api.post(f"/customers/{cid}/exports")
    assert later.status == 202 and later.json["id"] != first.json["id"]
    assert api.get(f"/jobs/{first.json['id']}").json["status"] == "completed"


def test_an_erase_retried_with_its_idempotency_key_after_the_erasure_replays_the_job(api, pump):
    cid = api.create_customer(name="Erik Lindqvist")["id"]
    key = {"Idempotency-Key": "erase-erik"}
    first = api.post(f"/customers/{cid}/erase", headers=key)
    pump.drain(timeout=60)

    retried = api.post(f"/customers/{cid}/erase", headers=key)
    assert (retried.status, retried.json["id"]) == (202, first.json["id"])
    assert retried.headers["idempotent-replayed"] == "true"
    assert api.get(retried.headers["location"]).json["status"] == "completed"
    assert_problem(api.post(f"/customers/{cid}/erase"), 404)


def test_an_export_delivered_after_its_customer_was_erased_leaves_no_document(api, chalice_app, pump):
    cid = api.create_customer(name="Liisa Korhonen", email="liisa@example.fi")["id"]
    export = api.post(f"/customers/{cid}/exports").json
    _start_jobs(chalice_app)
    [held] = _receive()  # the export's message, delivered only after the erasure
    sqs, url, _ = _queue()
    sqs.delete_message(QueueUrl=url, ReceiptHandle=held["receiptHandle"])

    api.post(f"/customers/{cid}/erase")
    pump.drain(timeout=60)
    reply = chalice_app.handler_map["run_jobs"]({"Records": [held]}, _context(60))
    assert reply == {"batchItemFailures": []}

    s3 = boto3.client("s3")
    assert s3.list_objects_v2(Bucket=get_settings().exports_bucket).get("KeyCount") == 0
    assert_problem(api.get(f"/jobs/{export['id']}"), 404)


def test_an_export_document_larger_than_a_part_is_uploaded_in_parts(tables):
    from chalicelib.store.exports import ExportDocuments

    part = 5 * 1024 * 1024
    documents = ExportDocuments(get_settings().exports_bucket, "eu-north-1", part_bytes=part)
    pieces = ['{"items": [', *(f'"{i:07d}{"ö" * 100_000}", ' for i in range(60)), '"end"]}']
    size = documents.write("exports/cus_x/job_x.json", iter(pieces), "job_x.json")

    s3 = boto3.client("s3")
    stored = s3.head_object(Bucket=get_settings().exports_bucket, Key="exports/cus_x/job_x.json")
    assert stored["ETag"].endswith('-3"') and size == len("".join(pieces).encode())  # 3 parts
    body = s3.get_object(Bucket=get_settings().exports_bucket, Key="exports/cus_x/job_x.json")["Body"].read()
    assert json.loads(body)["items"][-1] == "end" and len(body) == size


def test_an_upload_that_fails_midway_is_aborted(tables):
    from chalicelib.store.exports import ExportDocuments

    bucket = get_settings().exports_bucket
    documents = ExportDocuments(bucket, "eu-north-1", part_bytes=5 * 1024 * 1024)

    def pieces():
        yield "x" * (6 * 1024 * 1024)
        raise RuntimeError("the document could not be read on")

    with pytest.raises(RuntimeError):
        documents.write("exports/cus_y/job_y.json", pieces(), "job_y.json")
    s3 = boto3.client("s3")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


def test_the_stack_makes_the_exports_bucket_the_app_writes_to_encrypted(aws):
    assert aws["ExportsBucketName"] == get_settings().exports_bucket
    s3 = boto3.client("s3")
    encryption = s3.get_bucket_encryption(Bucket=get_settings().exports_bucket)
    [rule] = encryption["ServerSideEncryptionConfiguration"]["Rules"]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
