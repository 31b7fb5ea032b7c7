"""Segments over HTTP, with membership kept by the consumers (the local event pump runs them as
Lambda would): backfill, changes from the streams, time alone, deletion, events."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import assert_problem


def _segment(api, rules: dict, name: str = "Segment") -> dict:
    reply = api.post("/segments", {"name": name, "rules": rules})
    assert reply.status == 201, reply.json
    return reply.json


def _members(api, segment: dict, limit: int = 100) -> set[str]:
    return {m["customer_id"] for m in api.walk(f"/segments/{segment['id']}/members", limit)}


def _purchase(api, customer: dict, sku: str, at) -> None:
    body = {
        "type": "purchase",
        "channel": "store",
        "currency": "EUR",
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "items": [{"sku": sku, "name": "Kaffe 500 g", "quantity": 1, "unit_price": "5.90"}],
    }
    reply = api.post(f"/customers/{customer['id']}/interactions", body)
    assert reply.status == 201, reply.json


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


def test_a_new_segment_is_built_from_the_existing_customers_and_lists_its_members(api, pump):
    swedes = [
        api.create_customer(name="Åsa Öberg", locale="sv-SE"),
        api.create_customer(name="Lars", locale="sv"),
    ]
    api.create_customer(name="Jyrki Mäkelä", locale="fi")
    pump.drain()
    reply = api.post(
        "/segments", {"name": "Svenska kunder", "description": "sv", "rules": {"locales": ["sv"]}}
    )
    assert reply.status == 201, reply.json
    created = reply.json
    assert created["id"].startswith("seg_") and created["status"] == "building"
    assert created["member_count"] == 0 and created["version"] == 1
    assert reply.headers["etag"] == '"v1"' and reply.headers["location"] == f"/segments/{created['id']}"
    pump.drain()
    segment = api.get(f"/segments/{created['id']}").json
    assert segment["status"] == "ready" and segment["member_count"] == 2
    assert segment["rules"] == {"locales": ["sv"]}
    members = api.walk(f"/segments/{created['id']}/members", 25)
    assert {m["customer_id"] for m in members} == {c["id"] for c in swedes}
    first = next(m for m in members if m["customer_id"] == swedes[0]["id"])
    assert first["name"] == "Åsa Öberg" and first["locale"] == "sv-SE" and first["preferred_name"] is None
    assert first["joined_at"].endswith("Z")
    assert [s["id"] for s in api.get("/segments").json["items"]] == [created["id"]]


def test_the_backfill_walks_every_page_of_customers_and_counts_exactly(api, pump, monkeypatch):
    from chalicelib.services import segment_membership as segments

    monkeypatch.setattr(segments, "BUILD_PAGE", 3)
    ids = [api.create_customer(name=f"Kund {i}", tags=["vip"] if i % 2 else [])["id"] for i in range(11)]
    pump.drain()
    segment = _segment(api, {"tags_any": ["vip", "gold"]})
    pump.drain()
    built = api.get(f"/segments/{segment['id']}").json
    assert (built["status"], built["member_count"]) == ("ready", 5)
    assert _members(api, segment, limit=2) == set(ids[1::2])


def test_membership_follows_profile_changes_and_publishes_joined_and_left(api, pump):
    customer = api.create_customer(name="Maria Dela Cruz", locale="tl")
    segment = _segment(api, {"tags_any": ["vip"], "marketing_consent": True})
    pump.drain()
    _events()
    api.patch(f"/customers/{customer['id']}", {"tags": ["vip"], "marketing_consent": True})
    pump.drain()
    assert _members(api, segment) == {customer["id"]}
    api.patch(f"/customers/{customer['id']}", {"marketing_consent": False})
    pump.drain()
    assert _members(api, segment) == set()
    assert api.get(f"/segments/{segment['id']}").json["member_count"] == 0
    events = [e for e in _events() if e["type"].startswith("segment.")]
    assert [e["type"] for e in events] == ["segment.joined", "segment.left"]
    assert (
        events[0]["data"]["segment_id"] == segment["id"]
        and events[0]["data"]["customer_id"] == customer["id"]
    )


def test_repurchase_due_and_inactivity_change_membership_with_time_alone(api, pump, frozen_clock):
    customer = api.create_customer(name="Saša Kovačič", locale="sl")
    now = frozen_clock.now()
    # Bought every 10 days: next expected 10 days after the last purchase.
    _purchase(api, customer, "SKU-COFFEE", now - timedelta(days=11))
    _purchase(api, customer, "SKU-COFFEE", now - timedelta(days=1))
    due = _segment(api, {"repurchase_due_within_days": 3}, "Due")
    idle = _segment(api, {"inactive_days_at_least": 30}, "Idle")
    pump.drain()
    assert _members(api, due) == set() and _members(api, idle) == set()
    frozen_clock.advance(timedelta(days=6, hours=1))  # due in under 3 days now
    pump.trigger("review_segments")
    pump.drain()
    assert _members(api, due) == {customer["id"]}
    frozen_clock.advance(timedelta(days=14))  # overdue by more than the mean interval
    pump.trigger("review_segments")
    pump.drain()
    assert _members(api, due) == set()
    frozen_clock.advance(timedelta(days=10))  # 31 days since the last purchase
    pump.trigger("review_segments")
    pump.drain()
    assert _members(api, idle) == {customer["id"]}


def test_never_purchased_and_purchases_move_a_customer_between_segments(api, pump, frozen_clock):
    customer = api.create_customer(name="Nguyễn Văn An", locale="en-GB")
    never = _segment(api, {"never_purchased": True}, "Never")
    bought = _segment(api, {"bought_skus_any": ["SKU-MUG"]}, "Mugs")
    pump.drain()
    assert _members(api, never) == {customer["id"]} and _members(api, bought) == set()
    _purchase(api, customer, "SKU-MUG", frozen_clock.now())
    pump.drain()
    assert _members(api, never) == set() and _members(api, bought) == {customer["id"]}


def test_an_open_complaint_joins_and_its_resolution_leaves(api, pump, frozen_clock):
    customer = api.create_customer(name="Jyrki Mäkelä", locale="fi", email="jyrki@example.com")
    segment = _segment(api, {"open_complaints": True})
    pump.drain()
    reply = api.post(
        f"/customers/{customer['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": "high", "subject": "Paketti ei tullut"},
    )
    assert reply.status == 201
    pump.drain()
    assert _members(api, segment) == {customer["id"]}
    case = api.get(f"/customers/{customer['id']}/cases").json["items"][0]
    for change in ({"status": "in_progress"}, {"status": "resolved", "resolution": "Uusi paketti."}):
        assert api.patch(f"/cases/{case['id']}", change).status == 200
    pump.drain()
    assert _members(api, segment) == set()


def test_a_deleted_customer_leaves_every_segment(api, pump):
    customer = api.create_customer(name="Åsa", tags=["vip"])
    other = api.create_customer(name="Lars", tags=["vip"])
    segment = _segment(api, {"tags_any": ["vip"]})
    pump.drain()
    assert api.get(f"/segments/{segment['id']}").json["member_count"] == 2
    assert api.delete(f"/customers/{customer['id']}").status == 204
    pump.drain()
    assert _members(api, segment) == {other["id"]}
    assert api.get(f"/segments/{segment['id']}").json["member_count"] == 1


def test_new_rules_rebuild_the_segment_and_a_deleted_segment_is_gone(api, pump):
    swede = api.create_customer(name="Åsa", locale="sv")
    finn = api.create_customer(name="Jyrki", locale="fi")
    segment = _segment(api, {"locales": ["sv"]})
    pump.drain()
    reply = api.patch(
        f"/segments/{segment['id']}", {"rules": {"locales": ["fi"]}}, headers={"If-Match": '"v1"'}
    )
    assert reply.status == 200, reply.json
    assert reply.json["status"] == "building" and reply.headers["etag"] == '"v2"'
    pump.drain()
    assert api.get(f"/segments/{segment['id']}").json["status"] == "ready"
    assert _members(api, segment) == {finn["id"]}
    assert_problem(api.patch(f"/segments/{segment['id']}", {"name": "X"}, headers={"If-Match": '"v1"'}), 412)
    assert api.delete(f"/segments/{segment['id']}").status == 204
    pump.drain()
    assert_problem(api.get(f"/segments/{segment['id']}"), 404)
    assert_problem(api.get(f"/segments/{segment['id']}/members"), 404)
    assert swede


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "X", "rules": {}}, "rules"),
        ({"name": "X", "rules": {"colour": "red"}}, "rules.colour"),
        ({"name": "X", "rules": {"tiers": ["diamond"]}}, "rules.tiers"),
        ({"name": "X", "rules": {"min_score": 101}}, "rules.min_score"),
        ({"name": "X", "rules": {"min_score": 60, "max_score": 40}}, "rules.max_score"),
        ({"name": "X", "rules": {"locales": ["xx-YY"]}}, "rules.locales.0"),
        ({"name": "X", "rules": {"bought_skus_any": ["no spaces"]}}, "rules.bought_skus_any.0"),
        ({"name": "X", "rules": {"repurchase_due_within_days": 0}}, "rules.repurchase_due_within_days"),
        ({"name": "X", "rules": {"inactive_days_at_least": 3651}}, "rules.inactive_days_at_least"),
        ({"name": "X", "rules": {"open_complaints": "yes"}}, "rules.open_complaints"),
        ({"name": "", "rules": {"never_purchased": True}}, "name"),
        ({"name": "x" * 101, "rules": {"never_purchased": True}}, "name"),
        ({"name": "X", "description": "d" * 1001, "rules": {"never_purchased": True}}, "description"),
        ({"rules": {"never_purchased": True}}, "name"),
    ],
)
def test_a_bad_segment_is_a_400_naming_the_field(api, body, field):
    assert_problem(api.post("/segments", body), 400, field)


def test_segments_are_for_staff_only(api):
    customer = api.as_role("customer", "someone")
    assert_problem(customer.get("/segments"), 403)
    assert_problem(api.get("/segments/seg_nope"), 404)


def test_a_retried_create_with_the_same_idempotency_key_makes_one_segment(api):
    body = {"name": "VIP", "rules": {"tags_any": ["vip"]}}
    key = {"Idempotency-Key": "5b1f0c7e-segments-1"}
    first, again = api.post("/segments", body, headers=key), api.post("/segments", body, headers=key)
    assert first.status == again.status == 201 and first.json["id"] == again.json["id"]
    assert [s["id"] for s in api.get("/segments").json["items"]] == [first.json["id"]]
    assert_problem(api.post("/segments", {**body, "name": "Other"}, headers=key), 422)


def test_an_erased_customer_leaves_every_segment(api, pump):
    customer = api.create_customer(name="Saša Kovačič", tags=["vip"], email="sasa@example.com")
    segment = _segment(api, {"tags_any": ["vip"]})
    pump.drain()
    assert api.get(f"/segments/{segment['id']}").json["member_count"] == 1
    assert api.post(f"/customers/{customer['id']}/erase").status == 202
    pump.drain()
    assert _members(api, segment) == set()
    assert api.get(f"/segments/{segment['id']}").json["member_count"] == 0


def test_bad_new_rules_are_a_400_and_change_nothing(api):
    segment = _segment(api, {"tags_any": ["vip"]})
    assert_problem(api.patch(f"/segments/{segment['id']}", {"rules": {"tiers": []}}), 400, "rules.tiers")
    assert_problem(api.patch(f"/segments/{segment['id']}", {"rules": None}), 400, "rules")
    assert_problem(api.patch(f"/segments/{segment['id']}", {}), 400)
    assert api.get(f"/segments/{segment['id']}").json["version"] == 1
