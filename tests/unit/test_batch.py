"""chalicelib.events.batch: Powertools partial batch responses, safe when batches run at once."""

from __future__ import annotations

import threading
import time
import uuid

from chalicelib.events.batch import process_raw


def _sqs_event(bodies: list[str]) -> dict:
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": "handle",
                "body": body,
                "attributes": {},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-north-1:123456789012:queue",
                "awsRegion": "eu-north-1",
            }
            for body in bodies
        ]
    }


def test_two_batches_processed_at_once_each_report_only_their_own_failures():
    # The local event pump runs consumers in threads: two batches may be in flight together.
    events = {
        "first": _sqs_event([f"first-{n}" for n in range(5)] + ["first-bad"]),
        "second": _sqs_event([f"second-{n}" for n in range(6)]),
    }
    seen: dict[str, list[str]] = {"first": [], "second": []}
    responses: dict[str, dict] = {}
    start = threading.Barrier(2)

    def handle(name: str) -> None:
        def record_handler(record) -> None:
            seen[name].append(record.body)
            time.sleep(0.01)  # let the other batch run meanwhile
            if record.body.endswith("bad"):
                raise ValueError("bad record")

        start.wait()
        responses[name] = process_raw(events[name], None, record_handler, kind="sqs")

    threads = [threading.Thread(target=handle, args=(name,)) for name in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    bad = events["first"]["Records"][-1]["messageId"]
    assert responses["first"] == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert responses["second"] == {"batchItemFailures": []}
    for name, event in events.items():
        assert seen[name] == [record["body"] for record in event["Records"]]
