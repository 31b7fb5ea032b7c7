"""Outbound webhook subscriptions through the HTTP interface: create (the secret shown once),
read, list, change, delete, rotate the secret; events and URLs refused by name (every blocked
range, literally and by a name resolving to it); deliveries listed, retried and replayed."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import wiring
from chalicelib.config import Settings, get_settings
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.webhook_subscriptions import (
    FAILED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
    Delivery,
    body_of,
    delivery_id,
)
from tests.conftest import aws_client
from tests.functional.conftest import assert_problem
from tests.webhook_out_addresses import BLOCKED_ADDRESSES

PATH = "/webhook-subscriptions"
HOOK = "https://hooks.example.com/crm"


@pytest.fixture(autouse=True)
def public_dns(dns):
    dns.names["hooks.example.com"] = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    return dns


@pytest.fixture
def no_allow_list(monkeypatch):
    """The cloud stages' settings: no host is an exception (the local stage allows this machine)."""
    settings = replace(get_settings(), webhook_allow_hosts=())
    monkeypatch.setattr(wiring, "get_settings", lambda: settings)


def create(api, url=HOOK, events=("*",), **fields) -> dict:
    reply = api.post(PATH, {"url": url, "events": list(events), **fields})
    assert reply.status == 201, reply.json
    return reply.json


def test_a_subscription_is_created_with_its_secret_shown_once(api):
    reply = api.post(PATH, {"url": HOOK, "events": ["customer.created", "case.*"], "description": "the shop"})
    assert reply.status == 201, reply.json
    sub = reply.json
    assert sub["id"].startswith("sub_") and sub["secret"].startswith("whsec_")
    assert reply.headers["location"] == f"{PATH}/{sub['id']}"
    assert reply.headers["etag"] == '"v1"'
    assert {
        k: sub[k] for k in ("url", "events", "description", "enabled", "failing_since", "disabled_at")
    } == {
        "url": HOOK,
        "events": ["customer.created", "case.*"],
        "description": "the shop",
        "enabled": True,
        "failing_since": None,
        "disabled_at": None,
    }
    read = api.get(f"{PATH}/{sub['id']}")
    assert read.status == 200 and "secret" not in read.json
    assert {k: v for k, v in sub.items() if k != "secret"} == read.json
    assert sub["secret"] not in api.get(PATH).body.decode()


def test_subscriptions_are_listed_oldest_first_in_pages(api):
    made = [create(api, description=f"n{n}")["id"] for n in range(3)]
    assert [s["id"] for s in api.walk(PATH, 2)] == made


def test_a_repeated_create_with_one_idempotency_key_answers_the_same_secret(api):
    body = {"url": HOOK, "events": ["*"]}
    first = api.post(PATH, body, headers={"Idempotency-Key": "k-1"})
    again = api.post(PATH, body, headers={"Idempotency-Key": "k-1"})
    assert (first.status, again.status) == (201, 201)
    assert again.json == first.json and again.headers.get("idempotent-replayed") == "true"
    assert len(api.get(PATH).json["items"]) == 1


@pytest.mark.parametrize(
    ("events", "field"),
    [
        (["customer.created", "customer.exploded"], "events.1"),
        (["orders.*"], "events.0"),
        (["customer"], "events.0"),
        ([], "events"),
        ("*", "events"),
        ([1], "events.0"),
    ],
)
def test_an_unknown_event_is_a_400_naming_its_position(api, events, field):
    assert_problem(api.post(PATH, {"url": HOOK, "events": events}), 400, field)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": ["*"]}, "url"),
        ({"url": HOOK}, "events"),
        ({"url": "https://" + "a" * 2045 + ".io", "events": ["*"]}, "url"),
        ({"url": HOOK, "events": ["*"], "description": "x" * 501}, "description"),
        ({"url": HOOK, "events": ["*"], "secret": "whsec_mine"}, "secret"),
    ],
)
def test_a_malformed_subscription_is_a_400_naming_the_field(api, body, field):
    assert_problem(api.post(PATH, body), 400, field)


def _literal(address: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/crm"


@pytest.mark.parametrize(("address", "reason"), [a for a in BLOCKED_ADDRESSES if "%" not in a[0]])
def test_a_url_naming_a_blocked_address_is_a_422_naming_url(api, no_allow_list, address, reason):
    problem = assert_problem(api.post(PATH, {"url": _literal(address), "events": ["*"]}), 422, "url")
    assert reason in problem["errors"][0]["message"]


@pytest.mark.parametrize(("address", "reason"), BLOCKED_ADDRESSES)
def test_a_name_resolving_to_a_blocked_address_is_a_422_naming_url(api, no_allow_list, dns, address, reason):
    dns.names["sneaky.example.com"] = ["93.184.216.34", address]
    problem = assert_problem(
        api.post(PATH, {"url": "https://sneaky.example.com/", "events": ["*"]}), 422, "url"
    )
    assert problem["errors"][0]["message"].startswith("names sneaky.example.com, which resolves to")
    assert reason in problem["errors"][0]["message"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/crm", "must be an https URL"),
        ("https://user:pw@hooks.example.com/crm", "must not carry a user name or password"),
        ("https://nowhere.example.com/crm", "names nowhere.example.com, which does not resolve"),
        ("https://127.1/", "names a loopback address"),
        ("https://2130706433/", "names a loopback address"),
        ("https://hooks.example.com:0/crm", "must not name port 0"),
        ("https://93.184.216.34:0/hooks", "must not name port 0"),
    ],
)
def test_a_refused_url_is_a_422_problem_naming_url(api, no_allow_list, url, message):
    problem = assert_problem(api.post(PATH, {"url": url, "events": ["*"]}), 422, "url")
    assert problem["errors"] == [{"field": "url", "message": message}]


def test_the_allow_list_admits_this_machine_over_http_in_the_local_stage_and_nothing_without_it(
    api, dns, monkeypatch
):
    dns.names["localhost"] = ["127.0.0.1", "::1"]
    assert get_settings().webhook_allow_hosts == ("127.0.0.1", "localhost")
    create(api, "http://127.0.0.1:9000/hooks")
    create(api, "http://localhost:9000/hooks")
    settings = replace(get_settings(), webhook_allow_hosts=())
    monkeypatch.setattr(wiring, "get_settings", lambda: settings)
    for url in ("http://127.0.0.1:9000/hooks", "https://localhost:9000/hooks"):
        assert_problem(api.post(PATH, {"url": url, "events": ["*"]}), 422, "url")


def test_crm_webhook_allow_hosts_names_the_exceptions_and_only_the_local_stage_has_defaults():
    assert Settings.from_env({"CRM_STAGE": "local"}).webhook_allow_hosts == ("127.0.0.1", "localhost")
    assert Settings.from_env({"CRM_STAGE": "prod"}).webhook_allow_hosts == ()
    named = Settings.from_env({"CRM_STAGE": "prod", "CRM_WEBHOOK_ALLOW_HOSTS": "hooks.internal, 10.0.0.5"})
    assert named.webhook_allow_hosts == ("hooks.internal", "10.0.0.5")


def test_a_patch_changes_what_it_names_and_honours_if_match(api):
    sub = create(api, description="first")
    path = f"{PATH}/{sub['id']}"
    changed = api.patch(path, {"events": ["segment.*", "segment.joined"], "description": None})
    assert changed.status == 200, changed.json
    assert (changed.json["events"], changed.json["description"], changed.json["version"]) == (
        ["segment.*", "segment.joined"],
        None,
        2,
    )
    assert changed.headers["etag"] == '"v2"'
    assert_problem(
        api.patch(path, {"url": "https://hooks.example.com/v2"}, headers={"If-Match": '"v1"'}), 412
    )
    moved = api.patch(path, {"url": "https://hooks.example.com/v2"}, headers={"If-Match": '"v2"'})
    assert moved.status == 200 and moved.json["url"] == "https://hooks.example.com/v2"
    assert_problem(api.patch(path, {"url": "https://10.0.0.1/"}), 422, "url")
    assert_problem(api.patch(path, {"events": ["nope"]}), 400, "events.0")
    assert_problem(api.patch(path, {}), 400, "body")
    assert_problem(api.patch(path, {"enabled": None}), 400, "enabled")
    assert_problem(api.patch(f"{PATH}/sub_unknown", {"enabled": False}), 404)


@pytest.mark.parametrize("value", ["true", 1, 1.0, "yes", "false", 0, "off"])
def test_enabled_is_a_json_boolean_and_nothing_else(api, value):
    sub = create(api)
    assert_problem(api.patch(f"{PATH}/{sub['id']}", {"enabled": value}), 400, "enabled")
    assert api.get(f"{PATH}/{sub['id']}").json["version"] == sub["version"]


def test_disabling_by_hand_is_manual_and_enabling_again_clears_the_failure_state(api, frozen_clock):
    sub = create(api)
    repository = wiring.webhook_subscription_repository()
    repository.start_failing(sub["id"], frozen_clock.now() - timedelta(days=1))
    assert api.get(f"{PATH}/{sub['id']}").json["failing_since"] is not None
    off = api.patch(f"{PATH}/{sub['id']}", {"enabled": False}).json
    assert (off["enabled"], off["disabled_reason"], off["disabled_at"]) == (
        False,
        "manual",
        to_rfc3339(frozen_clock.now()),
    )
    on = api.patch(f"{PATH}/{sub['id']}", {"enabled": True}).json
    assert (on["enabled"], on["disabled_reason"], on["disabled_at"], on["failing_since"]) == (
        True,
        None,
        None,
        None,
    )


def test_rotating_the_secret_shows_the_new_one_once(api):
    sub = create(api)
    rotated = api.post(f"{PATH}/{sub['id']}/rotate-secret")
    assert rotated.status == 200, rotated.json
    assert rotated.json["secret"].startswith("whsec_") and rotated.json["secret"] != sub["secret"]
    assert rotated.headers["etag"] == '"v2"'
    assert "secret" not in api.get(f"{PATH}/{sub['id']}").json
    assert_problem(api.post(f"{PATH}/{sub['id']}/rotate-secret", {"x": 1}), 400, "body")
    assert_problem(api.post(f"{PATH}/sub_unknown/rotate-secret"), 404)


def test_a_deleted_subscription_is_gone_and_a_stale_if_match_keeps_it(api):
    sub = create(api)
    path = f"{PATH}/{sub['id']}"
    assert_problem(api.delete(path, headers={"If-Match": '"v7"'}), 412)
    reply = api.delete(path, headers={"If-Match": '"v1"'})
    assert (reply.status, reply.body) == (204, b"")
    assert_problem(api.get(path), 404)
    assert_problem(api.delete(path), 404)


def test_there_are_at_most_100_subscriptions(api):
    from chalicelib.store.models.webhook_subscriptions import SubscriptionCountModel

    first = create(api)
    counter = SubscriptionCountModel.get("SUBSCRIPTION_COUNT", "COUNT", consistent_read=True)
    assert counter.count == 1
    counter.update(actions=[SubscriptionCountModel.count.set(100)])  # as if 99 more were made
    assert_problem(api.post(PATH, {"url": HOOK, "events": ["*"]}), 409)
    assert api.delete(f"{PATH}/{first['id']}").status == 204
    create(api)
    assert SubscriptionCountModel.get("SUBSCRIPTION_COUNT", "COUNT", consistent_read=True).count == 100
    assert_problem(api.post(PATH, {"url": HOOK, "events": ["*"]}), 409)


# Deliveries


def _delivery(sub: dict, status: str, n: int, at: datetime) -> Delivery:
    event_id = f"evt_{n}"
    return Delivery(
        id=delivery_id(sub["id"], event_id, at),
        subscription_id=sub["id"],
        event_id=event_id,
        type="customer.updated",
        customer_id=f"cus_{n}",
        body=body_of("customer.updated", to_rfc3339(at), {"customer_id": f"cus_{n}"}),
        status=status,
        created_at=at,
    )


def _stored(sub: dict, *statuses: str) -> list[Delivery]:
    start = datetime(2026, 11, 26, 11, 0, tzinfo=UTC)
    made = [_delivery(sub, status, n, start + timedelta(minutes=n)) for n, status in enumerate(statuses)]
    for delivery in made:
        assert wiring.webhook_delivery_repository().add(delivery)
    return made


def test_deliveries_are_listed_newest_first_and_by_status(api):
    sub = create(api)
    made = _stored(sub, SUCCEEDED, FAILED, SKIPPED, PENDING, FAILED)
    path = f"{PATH}/{sub['id']}/deliveries"
    everything = api.walk(path, 2)
    assert [d["id"] for d in everything] == [d.id for d in reversed(made)]
    assert set(everything[0]) == {
        "id",
        "event_id",
        "type",
        "status",
        "attempts",
        "created_at",
        "next_attempt_at",
    }
    failed = api.get(f"{path}?status=failed").json["items"]
    assert [d["id"] for d in failed] == [made[4].id, made[1].id]
    assert api.get(f"{path}?status=succeeded&limit=1").json["next_cursor"] is None
    assert_problem(api.get(f"{path}?status=lost"), 400, "status")
    assert_problem(api.get(f"{PATH}/sub_unknown/deliveries"), 404)
    assert api.get(f"{PATH}/{create(api)['id']}/deliveries").json == {
        "items": [],
        "next_cursor": None,
    }  # empty


def _out_messages() -> list[dict]:
    sqs = aws_client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().webhooks_out_queue_name)["QueueUrl"]
    found = []
    while messages := sqs.receive_message(
        QueueUrl=url, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages"):
        for m in messages:
            found.append({"body": json.loads(m["Body"]), **m["Attributes"]})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def test_a_failed_or_skipped_delivery_is_retried_and_the_others_are_a_409(api):
    sub = create(api)
    succeeded, failed, skipped, pending = _stored(sub, SUCCEEDED, FAILED, SKIPPED, PENDING)
    retry = f"{PATH}/{sub['id']}/deliveries/{{}}/retry"
    for delivery in (succeeded, pending):
        assert_problem(api.post(retry.format(delivery.id)), 409, "status")
    assert_problem(api.post(retry.format("dlv_unknown")), 404)
    again = api.post(retry.format(failed.id))
    assert again.status == 202, again.json
    assert (again.json["id"], again.json["status"]) == (failed.id, "pending")
    assert api.post(retry.format(skipped.id)).json["status"] == "pending"
    [first, second] = _out_messages()
    assert first["body"] == {"subscription_id": sub["id"], "delivery_id": failed.id, "retry": 1}
    assert first["MessageDeduplicationId"] == f"{failed.id}#retry1"
    assert first["MessageGroupId"] == f"{sub['id']}#{failed.customer_id}"
    assert second["MessageDeduplicationId"] == f"{skipped.id}#retry1"
    assert_problem(api.post(retry.format(failed.id)), 409, "status")  # pending now


def test_a_disabled_subscription_retries_and_replays_nothing_until_it_is_enabled(api):
    sub = create(api)
    [failed] = _stored(sub, FAILED)
    api.patch(f"{PATH}/{sub['id']}", {"enabled": False})
    since = {"since": "2026-11-26T10:00:00+01:00"}
    assert_problem(api.post(f"{PATH}/{sub['id']}/deliveries/{failed.id}/retry"), 409, "enabled")
    assert_problem(api.post(f"{PATH}/{sub['id']}/replay", since), 409, "enabled")
    assert _out_messages() == []
    api.patch(f"{PATH}/{sub['id']}", {"enabled": True})
    replay = api.post(f"{PATH}/{sub['id']}/replay", since)
    assert replay.status == 202, replay.json
    assert (replay.json["subscription_id"], replay.json["since"]) == (sub["id"], "2026-11-26T09:00:00.000Z")
    [message] = _out_messages()
    assert message["body"]["type"] == "replay" and message["body"]["replay_id"] == replay.json["id"]
    assert message["MessageGroupId"] == f"{sub['id']}#replay"


@pytest.mark.parametrize(
    "body", [{}, {"since": "yesterday"}, {"since": "2026-11-26T10:00:00"}, {"from": "x"}]
)
def test_a_replay_needs_a_since_with_an_offset(api, body):
    sub = create(api)
    assert_problem(api.post(f"{PATH}/{sub['id']}/replay", body), 400)
    assert_problem(api.post(f"{PATH}/sub_unknown/replay", {"since": "2026-11-26T10:00:00Z"}), 404)
