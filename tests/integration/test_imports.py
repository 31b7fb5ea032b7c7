"""Bulk imports through their consumers: redelivered and crashed chunks, cancel, the upload's
S3 events, the presigned PUT, and a 20,000-row file read chunk by chunk."""

from __future__ import annotations

import json

import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import Api
from tests.integration.imports import (
    _chunks,
    _counts,
    _customer_count,
    _deliver,
    _put,
    _queue,
    _receive,
    _request,
    _results,
    _run_all,
    _start,
    _uploads,
)


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


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

    def crash_after_writing_the_third_row(self, imp_, record, **kw):
        written = real_write(self, imp_, record, **kw)
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


def test_planning_out_of_time_hands_on_to_a_message_that_plans_the_rest(api, chalice_app, monkeypatch):
    from chalicelib.services import imports

    monkeypatch.setattr(imports, "CHUNK_ROWS", 2)
    imp = _request(api, format="ndjson", dry_run=True)
    _put(imp, "".join(json.dumps({"name": f"Jose {n}"}) + "\n" for n in range(30)).encode())
    [upload] = _receive(_uploads())
    # 25 s left: planning keeps 20 s back, so it stops after its first batch of 10 chunks.
    assert _deliver(chalice_app, "start_imports", _uploads(), upload, seconds=25)
    bodies = [json.loads(r["body"]) for r in _receive(_chunks())]
    assert sorted(b["chunk"]["index"] for b in bodies if "chunk" in b) == list(range(10))
    assert [b for b in bodies if "plan" in b] == [{"import_id": imp["id"], "plan": True}]
    assert api.get(f"/imports/{imp['id']}").json["rows"] == 20

    for body in bodies:  # delivered again, with the rest of the time of a normal invocation
        sqs, url, _ = _queue(_chunks())
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
    _run_all(chalice_app)
    done = api.get(f"/imports/{imp['id']}").json
    assert _counts(done) == {
        "status": "completed",
        "rows": 30,
        "processed": 30,
        "created": 30,
        "updated": 0,
        "skipped": 0,
        "failed": 0,
    }


def test_an_upsert_whose_worker_died_after_an_update_still_counts_that_row_updated(
    api, chalice_app, monkeypatch
):
    from chalicelib.services import import_rows

    for n in range(3):
        api.create_customer(name=f"Kund {n}", email=f"kund{n}@example.se")
    imp = _request(api, mode="upsert")
    _put(imp, ("email,name\n" + "".join(f"kund{n}@example.se,Kund {n} Berg\n" for n in range(3))).encode())
    _start(chalice_app)
    [record] = _receive(_chunks())
    real_write, calls = import_rows.ImportRows.write, {"n": 0}

    def crash_after_the_second_update(self, imp_, rec, **kw):
        written = real_write(self, imp_, rec, **kw)
        calls["n"] += 1
        if calls["n"] == 2:
            raise ConnectionError("the worker died after the update, before the row's outcome")
        return written

    monkeypatch.setattr(import_rows.ImportRows, "write", crash_after_the_second_update)
    assert not _deliver(chalice_app, "run_imports", _chunks(), record, delete=False)
    received_again = {**record, "attributes": {**record["attributes"], "ApproximateReceiveCount": "2"}}
    assert _deliver(chalice_app, "run_imports", _chunks(), received_again)

    done = api.get(f"/imports/{imp['id']}").json
    assert _counts(done) == {
        "status": "completed",
        "rows": 3,
        "processed": 3,
        "created": 0,
        "updated": 3,
        "skipped": 0,
        "failed": 0,
    }
    versions = {c["name"]: c["version"] for c in api.get("/customers").json["items"]}
    assert versions == {"Kund 0 Berg": 2, "Kund 1 Berg": 2, "Kund 2 Berg": 2}
