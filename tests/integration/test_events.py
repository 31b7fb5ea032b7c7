"""The events the consumers publish on the events queue, from real stream records of the
customers, interactions and cases tables: one event per record however often it is delivered,
the data as the API shows it, and nothing of an erased customer's personal data, even from a
record read after the erasure."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.config import get_settings
from tests.conftest import aws_client
from tests.functional.conftest import Api
from tests.integration.streams import customer_records, interaction_records, stream_records
from tests.integration.test_cases import complain

NAME, EMAIL, PHONE = "Ingegärd Pålsson", "ingegard@exempel.se", "+46 70 123 45 67"
NOTE, SUBJECT = "Köpte kaffe åt svärmor Gunnel", "Trasig termos från Götgatan"


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _events() -> list[dict]:
    """The events on the queue (taken off it), in the order the queue keeps."""
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    found = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages"):
        for m in messages:
            event = json.loads(m["Body"])
            assert m["MessageAttributes"]["type"]["StringValue"] == event["type"]
            found.append(event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def _invoke(client, handler: str, records: list[dict]) -> None:
    assert client.lambda_.invoke(handler, {"Records": records}).payload == {"batchItemFailures": []}


def _cases_records() -> list[dict]:
    return stream_records(get_settings().cases_table)


def _shown(customer: dict) -> dict:
    return {k: v for k, v in customer.items() if k not in ("loyalty", "possible_duplicates")}


def test_a_customers_life_is_created_updated_and_deleted_once_each_in_order(client, api):
    from chalicelib import wiring

    customer = api.create_customer(name=NAME, email=EMAIL, locale="sv-SE", tags=["vip"])
    cid = customer["id"]
    assert api.patch(f"/customers/{cid}", {"phone": PHONE, "tags": ["vip", "nyhetsbrev"]}).status == 200
    updated = api.get(f"/customers/{cid}").json
    # A write of the profile that changes nothing a client sees (a new version only).
    customers, _ = wiring.repositories()
    stored = customers.get(cid)
    customers.update(stored, replace(stored, updated_at=stored.updated_at + timedelta(seconds=1)))
    assert api.delete(f"/customers/{cid}").status == 204

    records = customer_records()
    profile_writes = [r["eventName"] for r in records if r["dynamodb"]["Keys"]["sk"]["S"] == "PROFILE"]
    assert profile_writes == ["INSERT", "MODIFY", "MODIFY", "REMOVE"]
    for _ in range(2):  # delivered again: the queue de-duplicates on the record's id
        _invoke(client, "on_customer_change", records)

    events = _events()
    assert [e["type"] for e in events] == ["customer.created", "customer.updated", "customer.deleted"]
    created, changed, deleted = events
    assert {e["customer_id"] for e in events} == {cid}
    assert len({e["id"] for e in events}) == 3
    assert created["data"] == _shown(customer)
    assert changed["data"] == _shown(updated) | {"changed": ["phone", "tags"]}
    assert deleted["data"] == {"id": cid, "deleted_at": deleted["data"]["deleted_at"]}
    assert deleted["data"]["deleted_at"].endswith("Z")
    # When each happened, to the millisecond the item holds (the stream's own time is whole
    # seconds, a whole minute on DynamoDB Local).
    assert (created["occurred_at"], changed["occurred_at"]) == (customer["created_at"], updated["updated_at"])


def test_an_erased_customer_is_customer_erased_with_no_personal_data_and_never_customer_deleted(client, api):
    from chalicelib import wiring
    from chalicelib.domain.audit import Actor

    customer = api.create_customer(name=NAME, email=EMAIL, phone=PHONE)
    cid = customer["id"]
    _invoke(client, "on_customer_change", customer_records())
    assert [e["type"] for e in _events()] == ["customer.created"]

    wiring.erasure_service().erase(cid, Actor("staff-1", "staff", "POST /customers/{customer_id}/erase"))
    _invoke(client, "on_customer_change", customer_records())

    [erased] = _events()
    assert (erased["type"], erased["customer_id"]) == ("customer.erased", cid)
    assert set(erased["data"]) == {"id", "erased_at"} and erased["data"]["id"] == cid
    assert not [p for p in (NAME, EMAIL, "70 123 45 67", "+46701234567") if p in json.dumps(erased)]


def test_a_deleted_customer_erased_later_is_customer_deleted_then_customer_erased(client, api):
    from chalicelib import wiring
    from chalicelib.domain.audit import Actor

    customer = api.create_customer(name=NAME, email=EMAIL)
    cid = customer["id"]
    assert api.delete(f"/customers/{cid}").status == 204
    deletion = customer_records()
    _invoke(client, "on_customer_change", deletion)
    assert [e["type"] for e in _events()] == ["customer.created", "customer.deleted"]
    wiring.erasure_service().erase(cid, Actor("staff-1", "staff", "POST /customers/{customer_id}/erase"))
    seen = {r["eventID"] for r in deletion}
    erasure = [r for r in customer_records() if r["eventID"] not in seen]
    for _ in range(2):
        _invoke(client, "on_customer_change", erasure)

    [erased] = _events()
    assert (erased["type"], erased["data"]["id"]) == ("customer.erased", cid)
    assert NAME not in json.dumps(erased) and EMAIL not in json.dumps(erased)


def test_records_read_after_the_customers_erasure_publish_none_of_their_personal_data(client, api):
    """The stream is read behind the writes: records of the customer written before the
    erasure and read after it (a backlog, a retried batch) publish no customer.created,
    customer.updated, interaction.created, case.opened nor case.status_changed."""
    from chalicelib import wiring
    from chalicelib.domain.audit import Actor

    customer = api.create_customer(name=NAME, email=EMAIL)
    other = api.create_customer(name="Mojca Žagar")
    cid = customer["id"]
    assert api.patch(f"/customers/{cid}", {"phone": PHONE}).status == 200
    for who in (customer, other):
        visit = {"type": "visit", "channel": "store", "note": NOTE}
        assert api.post(f"/customers/{who['id']}/interactions", visit).status == 201
        complain(api, who, subject=SUBJECT)
    interactions = interaction_records()
    complaints = [r for r in interactions if r["dynamodb"]["NewImage"]["type"]["S"] == "complaint"]
    _invoke(client, "open_cases", complaints)  # both cases open before the erasure
    for who in (customer, other):
        [case] = api.get(f"/customers/{who['id']}/cases").json["items"]
        assert api.patch(f"/cases/{case['id']}", {"status": "acknowledged"}).status == 200
    profiles, cases = customer_records(), _cases_records()
    _events()

    wiring.erasure_service().erase(cid, Actor("staff-1", "staff", "POST /customers/{customer_id}/erase"))
    _invoke(client, "on_customer_change", profiles)
    _invoke(client, "open_cases", interactions)
    _invoke(client, "on_case_change", cases)

    events = _events()
    assert [e for e in events if e["customer_id"] == cid] == []
    assert not [p for p in (NAME, EMAIL, NOTE, SUBJECT, "70 123 45 67") if p in json.dumps(events)]
    # The other customer's records, in the same batches, are published.
    assert {e["type"] for e in events if e["customer_id"] == other["id"]} == {
        "customer.created",
        "interaction.created",
        "case.opened",
        "case.status_changed",
    }


def test_a_new_interaction_is_interaction_created_once_as_the_api_shows_it(client, api):
    customer = api.create_customer(name=NAME)
    cid = customer["id"]
    timeline = f"/customers/{cid}/interactions"
    coffee = {"sku": "SKU-KAFFE", "name": "Kaffe 500 g", "quantity": 2, "unit_price": "59.90"}
    purchase = api.post(
        timeline, {"type": "purchase", "channel": "store", "currency": "SEK", "items": [coffee], "note": NOTE}
    ).json
    returned = api.post(
        timeline,
        {
            "type": "return",
            "channel": "store",
            "currency": "SEK",
            "purchase_id": purchase["id"],
            "items": [{**coffee, "quantity": 1}],
        },
    ).json
    records = interaction_records()
    # The return also writes the purchase (its returned quantities): no event of that.
    assert sorted(r["eventName"] for r in records) == ["INSERT", "INSERT", "MODIFY"]
    for _ in range(2):
        _invoke(client, "open_cases", records)

    events = _events()
    assert [(e["type"], e["data"]["id"]) for e in events] == [
        ("interaction.created", purchase["id"]),
        ("interaction.created", returned["id"]),
    ]
    assert events[0]["data"] == api.get(f"{timeline}/{purchase['id']}").json
    assert events[1]["data"] == api.get(f"{timeline}/{returned['id']}").json
    assert {e["customer_id"] for e in events} == {cid}


def test_a_complaints_interaction_created_comes_before_its_case_opened(client, api):
    customer = api.create_customer(name=NAME)
    complaint = complain(api, customer, severity="high", subject=SUBJECT)
    _invoke(client, "open_cases", interaction_records())
    [case] = api.get(f"/customers/{customer['id']}/cases").json["items"]
    _invoke(client, "on_case_change", _cases_records())

    created, opened = _events()
    assert (created["type"], created["data"]["id"]) == ("interaction.created", complaint["id"])
    assert (created["data"]["severity"], created["data"]["subject"]) == ("high", SUBJECT)
    assert opened["type"] == "case.opened"
    assert opened["data"] == {
        "case_id": case["id"],
        "customer_id": customer["id"],
        "interaction_id": complaint["id"],
        "subject": SUBJECT,
        "severity": "high",
        "status": "open",
        "assignee": None,
        "opened_at": case["opened_at"],
        "first_response_due": case["first_response_due"],
        "resolution_due": case["resolution_due"],
        "escalation_level": 0,
        "resolution": None,
        "closed_reason": None,
        "time": opened["occurred_at"],
    }


def test_a_cases_status_changes_are_case_status_changed_and_its_notes_are_none(client, api):
    customer = api.create_customer(name=NAME)
    complain(api, customer)
    _invoke(client, "open_cases", interaction_records())
    [case] = api.get(f"/customers/{customer['id']}/cases").json["items"]
    path = f"/cases/{case['id']}"
    assert api.patch(path, {"status": "acknowledged"}).status == 200
    assert api.patch(path, {"note": "Ringde kunden"}).status == 200
    assert api.patch(path, {"assignee": "staff-2"}).status == 200
    assert api.patch(path, {"status": "in_progress"}).status == 200
    assert api.patch(path, {"status": "resolved", "resolution": "Ny termos skickad"}).status == 200
    records = _cases_records()
    for _ in range(2):
        _invoke(client, "on_case_change", records)

    events = [e for e in _events() if e["type"] != "interaction.created"]
    assert [(e["type"], e["data"].get("old_status"), e["data"]["status"]) for e in events] == [
        ("case.opened", None, "open"),
        ("case.status_changed", "open", "acknowledged"),
        ("case.status_changed", "acknowledged", "in_progress"),
        ("case.status_changed", "in_progress", "resolved"),
    ]
    resolved = events[-1]["data"]
    assert (resolved["new_status"], resolved["resolution"], resolved["assignee"]) == (
        "resolved",
        "Ny termos skickad",
        "staff-2",
    )


def test_the_event_pump_publishes_every_kind_of_event_from_the_api(api, pump):
    customer = api.create_customer(name=NAME, email=EMAIL)
    cid = customer["id"]
    assert api.patch(f"/customers/{cid}", {"preferred_name": "Inge"}).status == 200
    assert api.post(f"/customers/{cid}/interactions", {"type": "visit", "channel": "store"}).status == 201
    complain(api, customer)
    pump.drain()
    assert api.delete(f"/customers/{cid}").status == 204
    pump.drain()  # the purge closes the case: a status change

    types = [e["type"] for e in _events() if e["customer_id"] == cid]
    assert types[:2] == ["customer.created", "customer.updated"]
    # The visit, the complaint and its acknowledgement by email; the case opened, acknowledged,
    # and closed by the purge; the deletion.
    assert sorted(types[2:]) == [
        "case.opened",
        "case.status_changed",
        "case.status_changed",
        "customer.deleted",
        "interaction.created",
        "interaction.created",
        "interaction.created",
    ]
