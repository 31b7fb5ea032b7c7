"""Idempotent POSTs with an `Idempotency-Key` header, through HTTP against moto."""

from __future__ import annotations

import datetime as real_dt
import json
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import boto3
import pytest

from chalicelib.config import get_settings
from tests.conftest import ROOT, _wipe
from tests.functional.conftest import assert_problem

KEY = "9f1c5a1e-3b0d-4c8e-a0d4-0d6f3c1f2b7a"
DAY = 24 * 60 * 60


@pytest.fixture(autouse=True)
def empty_idempotency_table(tables):
    _wipe(get_settings().idempotency_table)


def records() -> list[dict]:
    """Powertools' records (the table also holds the attempts' seeds and claims)."""
    items = boto3.resource("dynamodb").Table(get_settings().idempotency_table).scan()["Items"]
    return [item for item in items if item["id"].startswith("crm-http#")]


def post_customer(api, body: dict, key: str | None = KEY):
    return api.post("/customers", body, headers={"Idempotency-Key": key} if key is not None else {})


def customer_ids(api) -> list[str]:
    return [c["id"] for c in api.walk("/customers", 50)]


def test_the_same_key_and_body_replays_the_first_response_and_writes_nothing_new(api):
    body = {"name": "Åsa Öberg", "email": "asa@example.com"}
    first = post_customer(api, body)
    again = post_customer(api, body)
    assert first.status == again.status == 201
    assert again.body == first.body
    assert again.headers["location"] == first.headers["location"] == f"/customers/{first.json['id']}"
    assert again.headers["etag"] == first.headers["etag"] == '"v1"'
    assert again.content_type == first.content_type == "application/json"
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert customer_ids(api) == [first.json["id"]]
    [record] = records()
    assert record["status"] == "COMPLETED"


def test_the_same_key_with_another_body_is_422_and_the_first_response_stays(api):
    first = post_customer(api, {"name": "Åsa Öberg"})
    problem = assert_problem(post_customer(api, {"name": "Jyrki Mäkelä"}), 422, "Idempotency-Key")
    assert "different body" in problem["detail"]
    assert problem["instance"] == "/customers"
    assert post_customer(api, {"name": "Åsa Öberg"}).body == first.body
    assert customer_ids(api) == [first.json["id"]]


def test_a_key_is_scoped_to_the_route_and_its_path(api):
    customer = post_customer(api, {"name": "Åsa Öberg"})
    other = api.create_customer(name="Jyrki Mäkelä")
    visit = {"type": "visit", "channel": "store"}
    headers = {"Idempotency-Key": KEY}
    first = api.post(f"/customers/{customer.json['id']}/interactions", visit, headers=headers)
    second = api.post(f"/customers/{other['id']}/interactions", visit, headers=headers)
    assert first.status == second.status == 201, (first.json, second.json)
    assert first.json["id"] != second.json["id"]
    assert first.json["customer_id"] == customer.json["id"] and second.json["customer_id"] == other["id"]
    replay = api.post(f"/customers/{customer.json['id']}/interactions", visit, headers=headers)
    assert replay.body == first.body and replay.headers["location"] == first.headers["location"]
    assert len(records()) == 3


def test_two_callers_using_the_same_key_never_collide(api):
    mine = post_customer(api, {"name": "Åsa Öberg"})
    theirs = post_customer(api.as_role("staff", "someone-else"), {"name": "Åsa Öberg"})
    assert mine.status == theirs.status == 201
    assert mine.json["id"] != theirs.json["id"]
    assert sorted(customer_ids(api)) == sorted([mine.json["id"], theirs.json["id"]])


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_an_empty_or_too_long_key_is_400_naming_the_header_and_writes_nothing(api, key):
    assert_problem(post_customer(api, {"name": "Åsa Öberg"}, key), 400, "Idempotency-Key")
    assert records() == [] and customer_ids(api) == []


def test_a_key_of_255_characters_is_accepted(api):
    body = {"name": "Åsa Öberg"}
    first = post_customer(api, body, "k" * 255)
    assert first.status == 201
    assert post_customer(api, body, "k" * 255).body == first.body


def test_an_invalid_request_is_rejected_before_the_key_is_used(api):
    assert_problem(post_customer(api, {"name": ""}), 400, "name")
    assert records() == []
    reply = api.post("/customers", {"name": "Åsa Öberg"}, headers={"Idempotency-Key": KEY}, auth=False)
    assert reply.status == 401
    assert records() == []
    assert post_customer(api, {"name": "Åsa Öberg"}).status == 201


def test_a_4xx_first_response_is_remembered_and_replayed(api):
    api.create_customer(email="taken@example.com")
    first = post_customer(api, {"name": "Åsa Öberg", "email": "taken@example.com"})
    assert_problem(first, 409, "email")
    api.delete(f"/customers/{customer_ids(api)[0]}")
    again = post_customer(api, {"name": "Åsa Öberg", "email": "taken@example.com"})
    assert_problem(again, 409, "email")
    assert again.body == first.body and again.headers["idempotent-replayed"] == "true"
    assert customer_ids(api) == []


def _fail_once(monkeypatch, failure: Exception) -> list[int]:
    from chalicelib.services.customers import CustomerService

    calls: list[int] = []
    original = CustomerService.create_noting_duplicates

    def create(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise failure
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CustomerService, "create_noting_duplicates", create)
    return calls


@pytest.mark.parametrize(
    "failure",
    [RuntimeError("DynamoDB is down"), "crm-error-500"],
    ids=["an exception", "a 500 problem"],
)
def test_a_5xx_is_not_remembered_so_a_retry_runs_again(api, monkeypatch, failure):
    from chalicelib.errors import CrmError

    if failure == "crm-error-500":
        failure = CrmError("Something broke.")
    calls = _fail_once(monkeypatch, failure)
    assert_problem(post_customer(api, {"name": "Åsa Öberg"}), 500)
    assert records() == []
    retry = post_customer(api, {"name": "Åsa Öberg"})
    assert retry.status == 201 and "idempotent-replayed" not in retry.headers
    assert len(calls) == 2 and customer_ids(api) == [retry.json["id"]]


def _in_progress(api, body: dict, key: str = KEY, remaining_ms: int = 30_000) -> None:
    """Write the record a request still running would have left (as staff-1, see tests/conftest)."""
    from chalicelib.api import idempotency

    layer = idempotency.persistence_layer()
    layer.configure(idempotency.config(), key_prefix=idempotency._KEY_PREFIX)
    raw = json.dumps(body, ensure_ascii=False).encode()
    data = idempotency.request_data(caller="staff:staff-1", route="POST /customers", key=key, body=raw)
    layer.save_inprogress(data, remaining_time_in_millis=remaining_ms)


def test_a_retry_while_the_first_request_still_runs_is_409(api):
    _in_progress(api, {"name": "Åsa Öberg"})
    problem = assert_problem(post_customer(api, {"name": "Åsa Öberg"}), 409)
    assert "still being processed" in problem["detail"]
    assert problem["instance"] == "/customers"
    assert customer_ids(api) == []
    reused = assert_problem(post_customer(api, {"name": "Jyrki Mäkelä"}), 422, "Idempotency-Key")
    assert reused["instance"] == "/customers"


def test_an_in_progress_record_whose_lambda_timed_out_no_longer_blocks(api):
    _in_progress(api, {"name": "Åsa Öberg"}, remaining_ms=-1000)
    assert post_customer(api, {"name": "Åsa Öberg"}).status == 201
    assert records()[0]["status"] == "COMPLETED"


def test_two_concurrent_requests_with_one_key_run_once(api, monkeypatch):
    from chalicelib.services.customers import CustomerService

    entered, release = threading.Event(), threading.Event()
    original = CustomerService.create_noting_duplicates

    def slow_create(self, *args, **kwargs):
        entered.set()
        assert release.wait(10)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(CustomerService, "create_noting_duplicates", slow_create)
    body = {"name": "Åsa Öberg"}
    replies = {}
    first = threading.Thread(target=lambda: replies.setdefault("first", post_customer(api, body)))
    first.start()
    try:
        assert entered.wait(10)
        assert_problem(post_customer(api, body), 409)
    finally:
        release.set()
        first.join(10)
    assert replies["first"].status == 201
    replay = post_customer(api, body)
    assert replay.body == replies["first"].body and replay.headers["idempotent-replayed"] == "true"
    assert customer_ids(api) == [replies["first"].json["id"]]


def _records_expiry() -> int:
    [record] = records()
    return int(record["expiration"])


def _shift_clock(monkeypatch, seconds: int) -> None:
    """Move Powertools' clock (it reads `datetime.datetime.now()` through `import datetime as dt`)
    and the application's."""
    from aws_lambda_powertools.utilities.idempotency import base
    from aws_lambda_powertools.utilities.idempotency.persistence import base as persistence_base
    from aws_lambda_powertools.utilities.idempotency.persistence import datarecord, dynamodb

    from chalicelib import wiring
    from chalicelib.domain.clock import Clock

    class Later(real_dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return real_dt.datetime.now(tz) + real_dt.timedelta(seconds=seconds)

    shifted = SimpleNamespace(datetime=Later, timedelta=real_dt.timedelta)
    for module in (base, persistence_base, datarecord, dynamodb):
        monkeypatch.setattr(module, "dt", shifted)

    class LaterClock(Clock):
        def now(self):
            return super().now() + real_dt.timedelta(seconds=seconds)

    monkeypatch.setattr(wiring, "clock", LaterClock())


def test_a_key_is_remembered_for_24_hours(api, monkeypatch):
    body = {"name": "Åsa Öberg"}
    first = post_customer(api, body)
    assert abs(_records_expiry() - (time.time() + DAY)) <= 5
    _shift_clock(monkeypatch, DAY - 60)
    assert post_customer(api, body).body == first.body
    assert customer_ids(api) == [first.json["id"]]


def test_after_24_hours_the_key_runs_again(api, monkeypatch):
    body = {"name": "Åsa Öberg"}
    first = post_customer(api, body)
    _shift_clock(monkeypatch, DAY + 1)
    later = post_customer(api, body)
    assert later.status == 201 and "idempotent-replayed" not in later.headers
    assert later.json["id"] != first.json["id"]
    assert len(customer_ids(api)) == 2
    assert abs(_records_expiry() - (time.time() + 2 * DAY + 1)) <= 5


def test_without_the_header_nothing_changes(api):
    first = api.create_customer(name="Åsa Öberg")
    second = api.create_customer(name="Åsa Öberg")
    assert first["id"] != second["id"]
    patched = api.patch(
        f"/customers/{first['id']}",
        {"name": "Åsa Berg"},
        headers={"Idempotency-Key": KEY, "If-Match": '"v1"'},
    )
    assert patched.status == 200, patched.json
    assert records() == []


def test_routes_without_the_header_never_import_powertools_idempotency():
    code = "import sys, app; assert 'aws_lambda_powertools.utilities.idempotency' not in sys.modules"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
