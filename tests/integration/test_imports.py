"""Bulk imports end to end: POST /imports, the file put into the imports bucket (whose
ObjectCreated event S3 (moto) sends to the uploads queue), then the consumers: `start_imports`
plans the chunks, `run_imports` writes them. Messages are delivered as Lambda delivers them, so
that a test can redeliver one, crash a worker in the middle of a chunk or cancel between two."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.config import get_settings
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from tests.functional.conftest import Api, assert_problem


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _context(name: str, seconds: float = 120) -> LambdaContext:
    return LambdaContext(
        name, 1024, f"arn:aws:lambda:eu-north-1:123456789012:function:{name}", int(seconds * 1000)
    )


def _queue(name: str) -> tuple[object, str, str]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return sqs, url, arn


def _receive(name: str) -> list[dict]:
    sqs, url, arn = _queue(name)
    records = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return records
        records += [lambda_sqs_record(m, arn) for m in messages]


def _deliver(chalice_app, function: str, queue: str, record: dict, *, delete: bool = True) -> bool:
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    try:
        reply = chalice_app.handler_map[function]({"Records": [record]}, _context(function))
    except BatchProcessingError:
        return False
    ok = not reply["batchItemFailures"]
    if ok and delete:
        sqs, url, _ = _queue(queue)
        sqs.delete_message(QueueUrl=url, ReceiptHandle=record["receiptHandle"])
    return ok


def _uploads() -> str:
    return get_settings().import_uploads_queue_name


def _chunks() -> str:
    return get_settings().imports_queue_name


def _start(chalice_app) -> None:
    """The uploads queue's messages (S3's events) through `start_imports`."""
    records = _receive(_uploads())
    assert records, "S3 sent no event for the upload"
    for record in records:
        assert _deliver(chalice_app, "start_imports", _uploads(), record)


def _run_all(chalice_app) -> int:
    """Every chunk (and planning) message through `run_imports`, until none is left."""
    delivered = 0
    while records := _receive(_chunks()):
        for record in records:
            assert _deliver(chalice_app, "run_imports", _chunks(), record)
            delivered += 1
    return delivered


def _request(api: Api, **options) -> dict:
    reply = api.post("/imports", {"format": "csv", "kind": "customers", **options})
    assert reply.status == 201, reply.json
    assert reply.headers["location"] == f"/imports/{reply.json['id']}"
    assert reply.json["status"] == "awaiting_upload" and reply.json["upload"]["method"] == "PUT"
    return reply.json


def _put(imp: dict, data: bytes) -> None:
    boto3.client("s3").put_object(Bucket=get_settings().imports_bucket, Key=f"imports/{imp['id']}", Body=data)


def _import(api: Api, chalice_app, data: bytes, **options) -> dict:
    imp = _request(api, **options)
    _put(imp, data)
    _start(chalice_app)
    _run_all(chalice_app)
    return api.get(f"/imports/{imp['id']}").json


def _results(api: Api, import_id: str) -> list[dict]:
    reply = api.get(f"/imports/{import_id}/results")
    assert reply.status == 200
    assert reply.content_type.startswith("application/x-ndjson")
    return [json.loads(line) for line in reply.body.decode().splitlines()]


def _counts(imp: dict) -> dict:
    return {k: imp[k] for k in ("status", "rows", "processed", "created", "updated", "skipped", "failed")}


NAMES_CSV = (
    "\ufeffname,email,tags,attributes.note\r\n"
    'Pirkko Järvinen,pirkko@example.fi,vip; nordic,"Asiakas, jolla on\nkaksi riviä"\r\n'
    'Špela Kovačič,spela@example.si,,"Pravi: ""hvala"""\r\n'
    'Maria Dela Cruz-Santos,maria@example.ph,pamilya,"Maynila, Pilipinas"\r\n'
    "Åsa Öberg,asa@example.se,,\r\n"
).encode()


def test_a_csv_with_a_bom_quoted_newlines_and_commas_imports_every_name_as_written(api, chalice_app):
    imp = _import(api, chalice_app, NAMES_CSV)

    assert _counts(imp) == {
        "status": "completed",
        "rows": 4,
        "processed": 4,
        "created": 4,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert imp["started_at"] and imp["completed_at"]
    results = _results(api, imp["id"])
    assert [(r["row"], r["outcome"]) for r in results] == [
        (1, "created"),
        (2, "created"),
        (3, "created"),
        (4, "created"),
    ]
    pirkko = api.get(f"/customers/{results[0]['customer_id']}").json
    assert pirkko["name"] == "Pirkko Järvinen" and pirkko["tags"] == ["vip", "nordic"]
    assert pirkko["attributes"] == {"note": "Asiakas, jolla on\nkaksi riviä"}
    spela = api.get("/customers?email=spela@example.si").json["items"][0]
    assert spela["name"] == "Špela Kovačič" and spela["attributes"] == {"note": 'Pravi: "hvala"'}
    assert api.get("/customers?email=asa@example.se").json["items"][0]["name"] == "Åsa Öberg"
    assert api.get(f"/imports/{imp['id']}/errors").json == {"items": [], "next_cursor": None}


def test_an_ndjson_file_with_invalid_lines_names_exactly_those_rows_in_its_errors(api, chalice_app):
    lines = [
        {"name": "Juan dela Cruz", "email": "juan@example.ph"},
        "{not json",
        {"name": "Liisa Virtanen", "locale": "fi-FI"},
        {"name": "Bad Email", "email": "no-at-sign"},
        {"name": "Unknown Field", "favourite": "blue"},
        {"name": "Ana Novak", "email": "ana@example.si", "marketing_consent": True},
        "",
        '["an", "array"]',
    ]
    data = "\n".join(
        line if isinstance(line, str) else json.dumps(line, ensure_ascii=False) for line in lines
    )
    imp = _import(api, chalice_app, data.encode(), format="ndjson")

    assert _counts(imp) == {
        "status": "completed",
        "rows": 8,
        "processed": 8,
        "created": 3,
        "updated": 0,
        "skipped": 1,
        "failed": 4,
    }
    errors = api.walk(f"/imports/{imp['id']}/errors", limit=2)
    assert [e["row"] for e in errors] == [2, 4, 5, 8]
    by_row = {e["row"]: e for e in errors}
    assert by_row[4]["errors"][0]["field"] == "email"
    assert by_row[5]["errors"] == [{"field": "favourite", "message": "is not a known field"}]
    assert by_row[2]["source"] == "{not json"
    results = _results(api, imp["id"])
    assert [r["row"] for r in results] == list(range(1, 9))
    assert results[6] == {"row": 7, "outcome": "skipped", "reason": "blank"}


def _customer_count() -> int:
    from chalicelib.store.models import CustomerModel

    return sum(1 for _ in CustomerModel.by_created.query("customers"))


@pytest.mark.dynamodb_local
def test_every_chunk_delivered_twice_and_a_crashed_worker_retried_create_nothing_twice(
    api, chalice_app, monkeypatch
):
    from chalicelib.services import import_rows, imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 5)
    rows = "".join(f"Kunde {n},kunde{n}@example.se\n" for n in range(1, 23))
    imp = _request(api)
    _put(imp, ("name,email\n" + rows).encode())
    _start(chalice_app)
    chunk_records = _receive(_chunks())
    assert len(chunk_records) == 5

    real_write = import_rows.ImportRows.write
    calls = {"n": 0}

    def crash_after_writing_the_third_row(self, imp_, record):
        written = real_write(self, imp_, record)
        calls["n"] += 1
        if calls["n"] == 3:
            raise ConnectionError("the worker died after the row's write, before its outcome")
        return written

    monkeypatch.setattr(import_rows.ImportRows, "write", crash_after_writing_the_third_row)
    assert not _deliver(chalice_app, "run_imports", _chunks(), chunk_records[0], delete=False)
    for record in chunk_records:
        assert _deliver(chalice_app, "run_imports", _chunks(), record, delete=False)
        assert _deliver(chalice_app, "run_imports", _chunks(), record, delete=False)  # redelivered

    done = api.get(f"/imports/{imp['id']}").json
    assert _counts(done) == {
        "status": "completed",
        "rows": 22,
        "processed": 22,
        "created": 22,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert _customer_count() == 22
    assert len({r["customer_id"] for r in _results(api, imp["id"])}) == 22


def test_cancel_mid_import_stops_the_chunks_not_yet_run_and_keeps_the_rows_written(
    api, chalice_app, monkeypatch
):
    from chalicelib.services import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 4)
    imp = _request(api)
    _put(imp, ("name\n" + "".join(f"Henkilö {n}\n" for n in range(12))).encode())
    _start(chalice_app)
    first, *rest = _receive(_chunks())
    assert _deliver(chalice_app, "run_imports", _chunks(), first)

    cancelled = api.post(f"/imports/{imp['id']}/cancel")
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    for record in rest:
        assert _deliver(chalice_app, "run_imports", _chunks(), record)

    after = api.get(f"/imports/{imp['id']}").json
    assert _counts(after) == {
        "status": "cancelled",
        "rows": 12,
        "processed": 4,
        "created": 4,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }
    assert _customer_count() == 4
    assert api.post(f"/imports/{imp['id']}/cancel").json["status"] == "cancelled"


def test_an_upsert_re_import_of_the_same_files_changes_nothing(api, chalice_app):
    customers = (
        "email,name,locale,marketing_consent\n"
        "mika@example.fi,Mika Häkkinen,fi-FI,true\n"
        "tala@example.ph,Tala Reyes,fil,false\n"
    ).encode()
    first = _import(api, chalice_app, customers, mode="upsert")
    assert (first["created"], first["skipped"]) == (2, 0)
    versions = {c["email"]: c["version"] for c in api.get("/customers").json["items"]}

    again = _import(api, chalice_app, customers, mode="upsert")
    assert _counts(again) == {
        "status": "completed",
        "rows": 2,
        "processed": 2,
        "created": 0,
        "updated": 0,
        "skipped": 2,
        "failed": 0,
    }
    assert {r["reason"] for r in _results(api, again["id"])} == {"unchanged"}
    assert {c["email"]: c["version"] for c in api.get("/customers").json["items"]} == versions

    changed = customers.replace(b"Tala Reyes", b"Tala Reyes-Santos")
    assert _counts(_import(api, chalice_app, changed, mode="upsert"))["updated"] == 1

    purchases = (
        b"customer_email,type,channel,occurred_at,currency,items\n"
        b'mika@example.fi,purchase,store,2025-11-02T10:00:00Z,EUR,"[{""sku"": ""SAUNA-1"", '
        b'""name"": ""Kiuas"", ""quantity"": 1, ""unit_price"": ""499.00""}]"\n'
        b"tala@example.ph,inquiry,phone,2025-11-03T09:30:00Z,,\n"
    )
    bought = _import(api, chalice_app, purchases, kind="interactions", mode="upsert")
    assert (bought["created"], bought["failed"]) == (2, 0), api.get(f"/imports/{bought['id']}/errors").json
    rerun = _import(api, chalice_app, purchases, kind="interactions", mode="upsert")
    assert (rerun["created"], rerun["skipped"]) == (0, 2)
    mika = api.get("/customers?email=mika@example.fi").json["items"][0]
    timeline = api.get(f"/customers/{mika['id']}/interactions").json["items"]
    assert [(i["type"], i["occurred_at"]) for i in timeline] == [("purchase", "2025-11-02T10:00:00.000Z")]


def test_upload_events_start_an_import_once_and_a_file_over_1_gb_fails_it(api, chalice_app):
    imp = _request(api, format="ndjson")
    _put(imp, b'{"name": "Sven Svensson"}\n')
    records = _receive(_uploads())
    assert [json.loads(r["body"])["Records"][0]["eventName"] for r in records] == ["ObjectCreated:Put"]
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": get_settings().imports_bucket}
    assert _deliver(
        chalice_app, "start_imports", _uploads(), {**records[0], "body": json.dumps(test_event)}, delete=False
    )
    assert _receive(_chunks()) == []  # S3's test event started nothing
    for record in records:
        assert _deliver(chalice_app, "start_imports", _uploads(), record, delete=False)
        assert _deliver(chalice_app, "start_imports", _uploads(), record)  # a duplicate event: ignored
    assert _run_all(chalice_app) == 1
    assert _counts(api.get(f"/imports/{imp['id']}").json)["created"] == 1

    big = _request(api)
    event = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:CompleteMultipartUpload",
                "s3": {
                    "bucket": {"name": get_settings().imports_bucket},
                    "object": {"key": f"imports%2F{big['id']}", "size": 1024**3 + 1},
                },
            }
        ]
    }
    record = {**records[-1], "messageId": "big-upload", "body": json.dumps(event)}
    assert _deliver(chalice_app, "start_imports", _uploads(), record, delete=False)
    failed = api.get(f"/imports/{big['id']}").json
    assert failed["status"] == "failed" and "1 GiB" in failed["reason"]


def test_a_header_with_an_unknown_column_fails_the_import_naming_it(api, chalice_app):
    imp = _import(api, chalice_app, b"name,shoe_size\nAino,38\n")
    assert imp["status"] == "failed" and "shoe_size" in imp["reason"]


def test_the_presigned_url_takes_a_plain_put_of_the_file(api, chalice_app):
    import requests

    imp = _request(api, format="ndjson", dry_run=True)
    assert imp["upload"]["headers"] == {}
    reply = requests.put(imp["upload"]["url"], data=b'{"name": "Malin Lind"}\n', timeout=10)
    assert reply.status_code == 200
    _start(chalice_app)
    _run_all(chalice_app)
    done = api.get(f"/imports/{imp['id']}").json
    assert (done["status"], done["created"]) == ("completed", 1)
    assert _customer_count() == 0  # a dry run writes nothing


def test_an_import_request_that_makes_no_sense_is_refused_naming_the_field(api):
    assert_problem(
        api.post("/imports", {"kind": "customers", "format": "csv", "match_on": "id"}), 400, "match_on"
    )
    assert_problem(api.post("/imports", {"kind": "orders", "format": "xlsx"}), 400, "kind", "format")
    assert_problem(api.get("/imports/imp_NOPE"), 404)
    assert_problem(api.get("/imports/imp_NOPE/results"), 404)


def test_a_20000_row_file_is_planned_and_read_chunk_by_chunk_with_memory_far_below_its_size(api, chalice_app):
    """The read path at full size: the upload's event plans 20,000 rows into chunk messages,
    and each chunk's byte range is read and parsed as a worker does, holding a chunk, never the
    file. The write path is proven on fewer rows by the tests above: on moto, writing 20,000
    rows' outcomes takes minutes (bench/imports.py measures it on DynamoDB Local). moto keeps
    the object in memory and answers a ranged GET from it, so the planner's stream is not
    measured here: what a worker holds, its range and its records, is."""
    import tracemalloc

    from chalicelib import wiring
    from chalicelib.domain.import_formats import Chunk, Layout, parse_chunk

    note = "Tämä on pitkä muistiinpano, joka tekee rivistä suuremman. " * 4
    data = "".join(
        json.dumps({"name": f"Asiakas {n}", "locale": "fi", "attributes": {"note": note}}, ensure_ascii=False)
        + "\n"
        for n in range(20_000)
    ).encode()
    assert len(data) > 5_000_000
    imp = _request(api, format="ndjson")
    _put(imp, data)
    _start(chalice_app)
    planned = api.get(f"/imports/{imp['id']}").json
    assert (planned["status"], planned["rows"]) == ("processing", 20_000)

    layout = Layout.from_dict(wiring.import_repository().get(imp["id"]).layout)
    files, rows, peaks = wiring.import_files(), [], []
    messages = [json.loads(r["body"])["chunk"] for r in _receive(_chunks())]
    for message in sorted(messages, key=lambda m: m["index"]):
        chunk = Chunk(**message)
        # In the cloud a ranged GET streams its range; moto reads the whole object for it.
        part = files.read(f"imports/{imp['id']}", chunk.start, chunk.end)
        assert len(part) == chunk.end - chunk.start <= 300 * 1024
        tracemalloc.start()
        try:
            records = parse_chunk(part, layout, chunk.first_row)
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
        assert all(r.body and not r.problems for r in records)
        rows += [row for r in records for row in r.rows]
    assert len(messages) == 100  # chunks of at most 200 rows
    assert rows == list(range(1, 20_001))
    assert max(peaks) < len(data) / 10, max(peaks)


def test_an_imported_complaint_older_than_its_sla_opens_a_case_escalated_once_and_not_acknowledged(
    api, chalice_app, client, pump
):
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    from chalicelib.domain.clock import to_rfc3339

    customer = api.create_customer(name="Jyrki Mäkelä", email="jyrki@example.fi", locale="fi")
    recent = to_rfc3339(datetime.now(UTC) - timedelta(minutes=10))
    data = (
        "customer_email,type,channel,occurred_at,severity,subject\n"
        "jyrki@example.fi,complaint,phone,2025-01-10T09:00:00Z,high,Paketti ei tullut\n"
        f"jyrki@example.fi,complaint,email,{recent},low,Väärä väri\n"
    ).encode()
    imp = _request(api, kind="interactions")
    _put(imp, data)
    pump.drain()

    assert api.get(f"/imports/{imp['id']}").json["created"] == 2
    cases = {c["subject"]: c for c in api.get(f"/customers/{customer['id']}/cases").json["items"]}
    old, new = cases["Paketti ei tullut"], cases["Väärä väri"]
    assert old["opened_at"] == "2025-01-10T09:00:00.000Z"
    assert (old["escalation_level"], old["contact_status"], old["status"]) == (1, "imported_past_due", "open")
    assert (new["escalation_level"], new["contact_status"]) == (0, "acknowledged_by_email")
    sent = ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages
    assert len(sent) == 1  # the recent complaint's acknowledgement only
    scheduled = json.loads((Path(__file__).parent / "events" / "scheduled_daily.json").read_text())
    assert client.lambda_.invoke("escalate_overdue_cases", scheduled).payload == {"escalated": 0}


def test_interactions_by_customer_id_follow_a_merged_id_and_fail_an_unknown_one_naming_the_field(
    api, chalice_app
):
    from chalicelib.store.keys import customer_pk
    from chalicelib.store.models.merges import AliasModel

    survivor = api.create_customer(name="Tala Reyes")["id"]
    merged = "cus_01KMERGEDAWAY0000000000000"
    AliasModel(
        customer_pk(merged),
        merged_id=merged,
        survivor_id=survivor,
        merge_id="mrg_X",
        merged_at="2026-01-01T00:00:00Z",
    ).save()
    lines = [
        {"customer_id": survivor, "type": "visit", "channel": "store", "occurred_at": "2025-10-01T10:00:00Z"},
        {"customer_id": merged, "type": "inquiry", "channel": "phone", "occurred_at": "2025-10-02T10:00:00Z"},
        {"customer_id": "cus_NOBODY", "type": "visit", "channel": "store"},
        {"type": "visit", "channel": "store"},
        {"customer_id": survivor, "type": "visit", "channel": "teleport"},
    ]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    imp = _import(api, chalice_app, data, kind="interactions", format="ndjson", match_on="id")

    assert (imp["created"], imp["failed"]) == (2, 3)
    results = _results(api, imp["id"])
    assert [r.get("customer_id") for r in results[:2]] == [survivor, survivor]
    errors = {e["row"]: e["errors"] for e in api.get(f"/imports/{imp['id']}/errors").json["items"]}
    assert errors[3] == [{"field": "customer_id", "message": "is not the id of a customer"}]
    assert errors[4] == [{"field": "customer_id", "message": "is required"}]
    assert [e["field"] for e in errors[5]] == ["channel"]
    assert len(api.get(f"/customers/{survivor}/interactions").json["items"]) == 2
