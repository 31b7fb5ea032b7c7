"""POST /customers/{survivor_id}/merge and GET /merges/{id}: the checks, the dry run, and the
start (the survivor's profile at once, the merged id an alias); what the merge's job then moves
is tested with the job."""

from __future__ import annotations

import json

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import assert_problem
from tests.functional.merge_helpers import finish, merge, record_not_duplicates


def _note(api, customer_id: str, note: str = "Kysyi kahvista") -> dict:
    reply = api.post(
        f"/customers/{customer_id}/interactions", {"type": "inquiry", "channel": "web", "note": note}
    )
    assert reply.status == 201, reply.json
    return reply.json


@pytest.fixture
def pair(api):
    survivor = api.create_customer(
        name="Jyrki Mäkelä",
        email="jyrki.makela@example.fi",
        locale="fi-FI",
        marketing_consent=True,
        tags=["vip"],
        attributes={"city": "Oulu", "shoe_size": "44"},
    )
    merged = api.create_customer(
        name="Jyrki Makela",
        preferred_name="Jyke",
        email="jyrki@example.com",
        phone="+358 40 123 4567",
        marketing_consent=False,
        tags=["newsletter", "vip"],
        attributes={"shoe_size": "43", "club": "HIFK"},
    )
    return survivor, merged


def test_a_dry_run_answers_the_profile_as_it_would_be_and_changes_nothing(api, pair):
    survivor, merged = pair
    _note(api, merged["id"])
    _note(api, merged["id"], "Palautti mukin")
    reply = merge(api, survivor["id"], merged["id"], dry_run=True)
    assert reply.status == 200, reply.json
    profile = reply.json["profile"]
    assert profile["id"] == survivor["id"] and profile["version"] == survivor["version"]
    assert (profile["name"], profile["preferred_name"], profile["email"], profile["phone"]) == (
        "Jyrki Mäkelä",
        "Jyke",
        "jyrki.makela@example.fi",
        "+358401234567",
    )
    assert profile["secondary_emails"] == ["jyrki@example.com"]
    assert profile["marketing_consent"] is False
    assert profile["tags"] == ["vip", "newsletter"]
    assert profile["attributes"] == {"city": "Oulu", "shoe_size": "44", "club": "HIFK"}
    assert reply.json["sources"] == {
        "name": "survivor",
        "preferred_name": "merged",
        "email": "survivor",
        "phone": "merged",
        "locale": "survivor",
        "marketing_consent": "merged",
    }
    # Two interactions and the creation's audit entry would move.
    assert reply.json["counts"] == {"interactions": 2, "cases": 0, "audit": 1}
    assert api.get(f"/customers/{survivor['id']}").json["version"] == survivor["version"]
    after = api.get(f"/customers/{merged['id']}")
    assert after.status == 200 and after.json["version"] == merged["version"]
    assert api.get(f"/customers?email={merged['email']}").json["items"][0]["id"] == merged["id"]


def test_a_merge_answers_202_with_where_to_follow_it_and_the_survivor_is_merged_at_once(api, pair):
    survivor, merged = pair
    reply = merge(api, survivor["id"], merged["id"], fields={"email": "merged", "name": "merged"})
    assert reply.status == 202, reply.json
    body = reply.json
    assert body["id"].startswith("mrg_") and reply.headers["location"] == f"/merges/{body['id']}"
    assert body["status"] == "running" and body["completed_at"] is None
    assert (body["survivor_id"], body["merged_id"]) == (survivor["id"], merged["id"])
    assert body["counts"] == {"interactions": 0, "cases": 0, "audit": 0}
    assert body["sources"]["email"] == body["sources"]["name"] == "merged"
    assert api.get(f"/merges/{body['id']}").json == body
    order = ["name", "preferred_name", "email", "phone", "locale", "marketing_consent"]
    assert list(body["sources"]) == list(api.get(f"/merges/{body['id']}").json["sources"]) == order

    profile = api.get(f"/customers/{survivor['id']}").json
    assert (profile["name"], profile["email"]) == ("Jyrki Makela", "jyrki@example.com")
    assert profile["secondary_emails"] == ["jyrki.makela@example.fi"]
    assert profile["version"] == survivor["version"] + 1
    gone = api.get(f"/customers/{merged['id']}")
    assert_problem(gone, 308)
    assert gone.json["merged_into"] == survivor["id"]


def test_the_merge_is_in_the_survivors_audit_trail_naming_both(api, pair):
    survivor, merged = pair
    assert merge(api, survivor["id"], merged["id"]).status == 202
    entries = api.get(f"/customers/{survivor['id']}/audit").json["items"]
    entry = next(e for e in entries if e["action"] == "merge")
    changes = {c["field"]: c for c in entry["changes"]}
    assert changes["merged_id"]["after"] == merged["id"]
    assert {"preferred_name", "phone", "secondary_emails", "tags", "marketing_consent"} <= set(changes)
    assert "name" not in changes  # the survivor's stayed


def test_both_addresses_find_the_survivor_and_neither_can_be_taken_by_another_customer(api, pair):
    survivor, merged = pair
    assert merge(api, survivor["id"], merged["id"]).status == 202
    for email in (survivor["email"], merged["email"], merged["email"].upper()):
        [found] = api.get(f"/customers?email={email}").json["items"]
        assert found["id"] == survivor["id"]
    assert_problem(api.post("/customers", {"name": "Someone", "email": merged["email"]}), 409, "email")


def test_merging_a_customer_into_itself_is_409(api, pair):
    survivor, _ = pair
    assert_problem(merge(api, survivor["id"], survivor["id"]), 409, "merge_id")


def test_an_unknown_or_deleted_customer_on_either_side_is_404_naming_merge_id_for_the_merged(api, pair):
    survivor, merged = pair
    assert_problem(merge(api, survivor["id"], "cus_unknown"), 404, "merge_id")
    assert_problem(merge(api, "cus_unknown", merged["id"]), 404)
    assert api.delete(f"/customers/{merged['id']}").status == 204
    problem = assert_problem(merge(api, survivor["id"], merged["id"]), 404, "merge_id")
    assert "deleted" in problem["detail"]
    assert_problem(merge(api, merged["id"], survivor["id"]), 404)


def test_an_id_merged_already_is_409_on_either_side_naming_where_it_went(api, pair):
    survivor, merged = pair
    started = merge(api, survivor["id"], merged["id"]).json
    finish(started["id"])
    third = api.create_customer(name="Jyrki M.")
    problem = assert_problem(merge(api, third["id"], merged["id"]), 409, "merge_id")
    assert problem["merged_into"] == survivor["id"]
    problem = assert_problem(merge(api, merged["id"], third["id"]), 409)
    assert problem["merged_into"] == survivor["id"]


def test_a_customer_a_running_merge_involves_can_be_merged_on_neither_side(api, pair):
    survivor, merged = pair
    started = merge(api, survivor["id"], merged["id"]).json
    third = api.create_customer(name="Jyrki M.")
    for attempt in (merge(api, survivor["id"], third["id"]), merge(api, third["id"], survivor["id"])):
        problem = assert_problem(attempt, 409)
        assert started["id"] in problem["detail"]
    finish(started["id"])
    assert merge(api, survivor["id"], third["id"]).status == 202


def test_an_erased_customer_is_409(api, pump, pair):
    survivor, merged = pair
    assert api.post(f"/customers/{merged['id']}/erase").status == 202
    pump.drain()
    assert_problem(merge(api, survivor["id"], merged["id"]), 409, "merge_id")
    assert_problem(merge(api, merged["id"], survivor["id"]), 409)


def test_customers_recorded_as_different_people_merge_only_with_force(api, pair):
    survivor, merged = pair
    record_not_duplicates(api, survivor["id"], merged["id"])
    assert_problem(merge(api, survivor["id"], merged["id"]), 409, "force")
    assert_problem(merge(api, survivor["id"], merged["id"], dry_run=True), 409, "force")
    assert merge(api, survivor["id"], merged["id"], force=True).status == 202


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"tags": "merged"}, "fields.tags"),
        ({"marketing_consent": "survivor"}, "fields.marketing_consent"),
        ({"email": "both"}, "fields.email"),
        ({"name": 1}, "fields.name"),
    ],
)
def test_a_field_a_merge_does_not_choose_or_a_side_that_is_none_is_422_naming_it(api, pair, fields, named):
    survivor, merged = pair
    assert_problem(merge(api, survivor["id"], merged["id"], fields=fields), 422, named)
    assert api.get(f"/customers/{merged['id']}").status == 200


def test_a_merge_that_would_pass_a_profiles_limits_is_409_naming_the_field(api):
    survivor = api.create_customer(name="Maria Cruz", tags=[f"t{i}" for i in range(20)])
    merged = api.create_customer(name="Cruz Maria", tags=["balikbayan"])
    assert_problem(merge(api, survivor["id"], merged["id"]), 409, "tags")
    assert api.get(f"/customers/{merged['id']}").status == 200


def test_an_unknown_merge_is_404(api):
    assert_problem(api.get("/merges/mrg_unknown"), 404)


def test_a_merge_is_asked_for_once_per_idempotency_key(api, pair):
    survivor, merged = pair
    headers = {"Idempotency-Key": "merge-jyrki-1"}
    first = api.post(f"/customers/{survivor['id']}/merge", {"merge_id": merged["id"]}, headers=headers)
    again = api.post(f"/customers/{survivor['id']}/merge", {"merge_id": merged["id"]}, headers=headers)
    assert first.status == again.status == 202
    assert again.json == first.json and again.headers["idempotent-replayed"] == "true"


def _events() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    found = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)
        if not got.get("Messages"):
            return found
        for message in got["Messages"]:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_merge_publishes_customer_merged_of_the_survivor(api, pump, pair):
    survivor, merged = pair
    pump.drain()
    _events()
    started = merge(api, survivor["id"], merged["id"]).json
    pump.drain()
    events = _events()
    [merged_event] = [e for e in events if e["type"] == "customer.merged"]
    assert merged_event["customer_id"] == survivor["id"]
    assert merged_event["data"] == {
        "survivor_id": survivor["id"],
        "merged_id": merged["id"],
        "time": started["created_at"],
    }
    # The merged profile's removal is no deletion.
    assert not [e for e in events if e["type"] in ("customer.deleted", "customer.erased")]
