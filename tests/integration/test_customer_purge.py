"""Deleting a customer removes the profile at once; the customers stream consumer then removes
the timeline and closes the customer's cases, once, however often the record is delivered."""

from __future__ import annotations

import contextlib
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.functional.conftest import Api, assert_problem
from tests.integration.streams import interaction_records
from tests.integration.test_cases import _follow_up_event, complain, sent_mail

EVENT = Path(__file__).parent / "events" / "customer_profile_removed.json"


def _event_for(customer_id: str) -> dict:
    return json.loads(EVENT.read_text().replace("__CUSTOMER_ID__", customer_id))


def _interaction_count(customer_id: str) -> int:
    from chalicelib.store.models import InteractionModel

    return InteractionModel.count(customer_id)


def test_a_removed_profile_record_purges_the_customers_timeline(client, staff_token):
    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    kept = api.create_customer(name="Mojca Žagar")
    for who in (gone, kept):
        for kind in ("visit", "inquiry", "feedback"):
            api.post(f"/customers/{who['id']}/interactions", {"type": kind, "channel": "store"})
    assert api.delete(f"/customers/{gone['id']}").status == 204

    response = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert response.payload == {"batchItemFailures": []}
    assert _interaction_count(gone["id"]) == 0
    assert _interaction_count(kept["id"]) == 3

    again = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert again.payload == {"batchItemFailures": []}
    assert _interaction_count(kept["id"]) == 3


def test_a_removed_profile_record_removes_the_customers_sign_in_links(client, staff_token):
    from chalicelib import wiring
    from chalicelib.config import get_settings

    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    kept = api.create_customer(name="Mojca Žagar")
    for who, sub in ((gone, "sub-gone"), (kept, "sub-kept")):
        assert api.request("PUT", f"/customers/{who['id']}/identities/{sub}").status == 201
    me = api.as_role("customer", gone["id"])
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    assert api.delete(f"/customers/{gone['id']}").status == 204

    response = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert response.payload == {"batchItemFailures": []}
    identities, issuer = wiring.identity_repository(), get_settings().jwt_issuer
    assert identities.customer_for(issuer, "sub-gone") is None and identities.of_customer(gone["id"]) == []
    assert wiring.repositories()[0].email_change(gone["id"]) is None
    assert identities.customer_for(issuer, "sub-kept") == kept["id"]


def test_the_purge_reads_the_sign_in_links_strongly_consistent(client, staff_token, monkeypatch):
    """A link commits before the profile's delete or fails (its check of the profile is in its
    transaction, which DynamoDB serializes with the delete's): one committed just before must
    be seen by the purge, or the loyalty purge after it, seeing its pointer, would remove that
    and leave the lookup behind with nothing to find it. Neither emulator lags, so the request
    itself is checked."""
    import botocore.client

    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    assert api.request("PUT", f"/customers/{gone['id']}/identities/sub-gone").status == 201
    assert api.delete(f"/customers/{gone['id']}").status == 204
    queries, original = [], botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        if operation_name == "Query":
            values = [v.get("S") for v in api_params.get("ExpressionAttributeValues", {}).values()]
            queries.append((bool(api_params.get("ConsistentRead")), values))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    assert client.lambda_.invoke("on_customer_change", _event_for(gone["id"])).payload == {
        "batchItemFailures": []
    }
    link_reads = [consistent for consistent, values in queries if "IDENTITY#" in values]
    assert link_reads and all(link_reads), queries


@pytest.mark.dynamodb_local
def test_links_racing_the_delete_of_their_customer_leave_no_lookup_behind(client, staff_token):
    from chalicelib import wiring
    from chalicelib.config import get_settings
    from chalicelib.domain.audit import Actor
    from chalicelib.errors import NotFound

    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    staff = Actor("staff-1", "staff", "test")
    barrier = threading.Barrier(5)

    def link(n: int) -> None:
        barrier.wait()
        with contextlib.suppress(NotFound):  # the profile went first
            wiring.identity_service().link(gone["id"], f"sub-{n}", staff)

    def delete() -> None:
        barrier.wait()
        wiring.customer_service().delete(gone["id"], staff)

    with ThreadPoolExecutor(5) as pool:
        for future in [pool.submit(link, n) for n in range(4)] + [pool.submit(delete)]:
            future.result()
    assert client.lambda_.invoke("on_customer_change", _event_for(gone["id"])).payload == {
        "batchItemFailures": []
    }
    identities, issuer = wiring.identity_repository(), get_settings().jwt_issuer
    assert [identities.customer_for(issuer, f"sub-{n}", consistent=True) for n in range(4)] == [None] * 4


CLOSING_NOTE = "Closed: the customer was deleted."


def _open_cases(client, api: Api, customer: dict, count: int) -> list[dict]:
    """`count` complaints, their cases opened by `open_cases` (their follow-ups left queued)."""
    for n in range(count):
        complain(api, customer, subject=f"Klagomål {n}")
    assert client.lambda_.invoke("open_cases", {"Records": interaction_records()}).payload == {
        "batchItemFailures": []
    }
    cases = api.walk(f"/customers/{customer['id']}/cases", limit=100)
    assert len(cases) == count
    return cases


def _move(api: Api, case: dict, *statuses: str) -> dict:
    for status in statuses:
        body = {"status": status} | ({"resolution": "Ny vara skickad."} if status == "resolved" else {})
        reply = api.patch(f"/cases/{case['id']}", body)
        assert reply.status == 200, reply.json
    return reply.json


def _closings(api: Api, case_id: str) -> int:
    history = api.walk(f"/cases/{case_id}/history", limit=100)
    return sum(h["note"] == CLOSING_NOTE for h in history)


def test_a_deleted_customers_cases_are_closed_once_however_often_the_record_comes(client, staff_token):
    api = Api(client, staff_token)
    customer = api.create_customer(name="Saša Kovačič", email="sasa@example.si", locale="sl")
    waiting, working, done = _open_cases(client, api, customer, 3)
    working = _move(api, working, "acknowledged", "in_progress")
    done = _move(api, done, "acknowledged", "in_progress", "resolved", "closed")
    assert done["closed_reason"] == "resolved"
    assert api.delete(f"/customers/{customer['id']}").status == 204

    event = _event_for(customer["id"])
    removed_twice = {"Records": [event["Records"][0], *event["Records"]]}
    for delivery in (removed_twice, event):
        assert client.lambda_.invoke("on_customer_change", delivery).payload == {"batchItemFailures": []}

    for before in (waiting, working):
        after = api.get(f"/cases/{before['id']}").json
        assert (after["status"], after["closed_reason"]) == ("closed", "customer_deleted")
        assert after["version"] == before["version"] + 1
        assert after["history"][-1] | {"at": None} == {
            "at": None,
            "by": "system",
            "from": before["status"],
            "to": "closed",
            "note": CLOSING_NOTE,
        }
        assert _closings(api, before["id"]) == 1
    # Not told before the deletion, and never will be: the queued follow-up sends nothing.
    assert api.get(f"/cases/{waiting['id']}").json["contact_status"] == "customer_deleted"
    assert client.lambda_.invoke("send_follow_ups", _follow_up_event(waiting["id"])).payload == {
        "batchItemFailures": []
    }
    assert sent_mail() == []
    assert api.get(f"/cases/{done['id']}").json == done  # closed already: left as staff closed it

    assert api.get("/cases").json["items"] == []
    closed = api.walk("/cases?status=closed", limit=100)
    assert sorted(c["id"] for c in closed) == sorted(c["id"] for c in (waiting, working, done))
    for change in ({"note": "Ringde."}, {"assignee": "agent-7"}, {"status": "reopened"}):
        problem = assert_problem(api.patch(f"/cases/{working['id']}", change), 409, *change)
        assert "closed" in problem["detail"] and "customer was deleted" in problem["detail"]
    audit = api.walk(f"/customers/{customer['id']}/audit", limit=100)
    closings = [
        e["entity_id"]
        for e in audit
        if {"field": "closed_reason", "before": None, "after": "customer_deleted"} in e["changes"]
    ]
    assert sorted(closings) == sorted([waiting["id"], working["id"]])


def test_a_case_changed_while_it_is_being_closed_is_read_again_and_closed_after_the_change(
    client, staff_token, monkeypatch
):
    from chalicelib import wiring
    from chalicelib.store.cases import CaseRepository

    api = Api(client, staff_token)
    customer = api.create_customer(name="Jyrki Mäkelä", locale="fi")
    [case] = _open_cases(client, api, customer, 1)
    stale = wiring.case_repository().get(case["id"])
    assert api.patch(f"/cases/{case['id']}", {"note": "Soitin asiakkaalle."}).status == 200
    assert api.delete(f"/customers/{customer['id']}").status == 204
    read = CaseRepository.get
    reads = []

    def first_read_is_stale(self, case_id, *, consistent=False):
        reads.append(case_id)
        return stale if len(reads) == 1 else read(self, case_id, consistent=consistent)

    monkeypatch.setattr(CaseRepository, "get", first_read_is_stale)

    response = client.lambda_.invoke("on_customer_change", _event_for(customer["id"]))

    assert response.payload == {"batchItemFailures": []}
    assert reads == [case["id"], case["id"]]
    after = api.get(f"/cases/{case['id']}").json
    assert (after["status"], after["version"]) == ("closed", stale.version + 2)
    assert [h["note"] for h in after["history"][-2:]] == ["Soitin asiakkaalle.", CLOSING_NOTE]


@pytest.mark.dynamodb_local
def test_concurrent_deliveries_of_a_deleted_customers_record_close_each_case_once(client, staff_token):
    api = Api(client, staff_token)
    customer = api.create_customer(name="Maria Dela Cruz", locale="tl")
    cases = _open_cases(client, api, customer, 3)
    assert api.delete(f"/customers/{customer['id']}").status == 204
    event = _event_for(customer["id"])
    deliveries = 4
    start = threading.Barrier(deliveries, timeout=10)

    def deliver(_):
        start.wait()
        return client.lambda_.invoke("on_customer_change", event).payload

    with ThreadPoolExecutor(max_workers=deliveries) as pool:
        payloads = list(pool.map(deliver, range(deliveries), timeout=60))

    assert payloads == [{"batchItemFailures": []}] * deliveries
    for case in cases:
        after = api.get(f"/cases/{case['id']}").json
        assert (after["status"], after["version"]) == ("closed", case["version"] + 1)
        assert _closings(api, case["id"]) == 1


def test_a_follow_up_that_finds_the_customer_deleted_closes_the_case_without_emailing(client, staff_token):
    api = Api(client, staff_token)
    customer = api.create_customer(name="Åsa Öberg", email="asa@example.se", locale="sv")
    [case] = _open_cases(client, api, customer, 1)
    assert api.delete(f"/customers/{customer['id']}").status == 204

    # The follow-up comes before the customers stream's record: it closes the case itself.
    assert client.lambda_.invoke("send_follow_ups", _follow_up_event(case["id"])).payload == {
        "batchItemFailures": []
    }
    closed = api.get(f"/cases/{case['id']}").json
    assert (closed["status"], closed["closed_reason"], closed["contact_status"]) == (
        "closed",
        "customer_deleted",
        "customer_deleted",
    )
    assert sent_mail() == []

    assert client.lambda_.invoke("on_customer_change", _event_for(customer["id"])).payload == {
        "batchItemFailures": []
    }
    assert api.get(f"/cases/{case['id']}").json == closed
    assert _closings(api, case["id"]) == 1
