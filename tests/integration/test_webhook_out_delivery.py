"""Outbound webhooks end to end through their consumers: events published on the events queue,
fanned out by `fan_out_events`, POSTed by `deliver_webhooks` to real receivers on 127.0.0.1,
with the queues driven by the test (tests/webhook_out_queues.py) so that a retry's delay is
read from the ChangeMessageVisibility it asked for, not waited for."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from chalicelib import wiring
from chalicelib.domain.clock import FrozenClock, to_rfc3339
from chalicelib.domain.webhook_signatures import verify
from chalicelib.store.webhook_http import WebhookSender
from tests.functional.conftest import Api
from tests.webhook_out_addresses import BLOCKED_ADDRESSES
from tests.webhook_out_queues import WebhookQueues, body, event
from tests.webhook_out_receiver import Reply, receiver


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


@pytest.fixture
def clock(monkeypatch) -> FrozenClock:
    # Near the real time: receivers check webhook-timestamp against their own clock.
    frozen = FrozenClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(wiring, "clock", frozen)
    return frozen


@pytest.fixture
def queues(chalice_app, tables, clock, monkeypatch) -> WebhookQueues:
    monkeypatch.setattr(wiring, "webhook_jitter", lambda: 0.5)  # every delay as scheduled
    return WebhookQueues(chalice_app, clock).record_visibility(monkeypatch)


@pytest.fixture
def receivers():
    started = []

    def start(*replies: Reply):
        r = receiver(replies or (Reply(),))
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


@pytest.fixture
def short_timeout(monkeypatch):
    from chalicelib.config import get_settings

    def sender():
        return WebhookSender(get_settings().webhook_allow_hosts, wiring.webhook_resolver(), timeout_s=0.3)

    monkeypatch.setattr(wiring, "webhook_sender", sender)


def subscribe(api: Api, url: str, events=("*",)) -> dict:
    reply = api.post("/webhook-subscriptions", {"url": url, "events": list(events)})
    assert reply.status == 201, reply.json
    return reply.json


def deliveries(api: Api, subscription: dict, status: str | None = None) -> list[dict]:
    query = f"&status={status}" if status else ""
    reply = api.get(f"/webhook-subscriptions/{subscription['id']}/deliveries?limit=100{query}")
    assert reply.status == 200, reply.json
    return reply.json["items"]


def ids_received(r) -> list[str]:
    return [got.headers["webhook-id"] for got in r.received]


def test_a_receiver_failing_twice_gets_three_attempts_and_a_later_event_of_the_customer_after_them(
    api, queues, clock, receivers
):
    # In the order the requests come: cus_A's first, cus_B's, cus_A's second and third, ...
    r = receivers(Reply(500, body=b"oops"), Reply(204), Reply(503, (("Retry-After", "600"),)), Reply(204))
    sub = subscribe(api, r.url, ["customer.*"])
    first = queues.publish(event("customer.updated", "cus_A", clock.now(), 1, name="Åsa"))
    second = queues.publish(event("customer.updated", "cus_A", clock.now() + timedelta(milliseconds=5), 2))
    other = queues.publish(event("customer.updated", "cus_B", clock.now(), 3))
    queues.fan_out()

    record, failed = queues.deliver_one()
    assert failed and body(record)["subscription_id"] == sub["id"]
    assert [h.seconds for h in queues.hidden] == [5]
    # The lane of cus_A is held while its first message is hidden; cus_B's goes on.
    record, failed = queues.deliver_one()
    assert not failed and ids_received(r)[-1] == other.id
    assert queues.deliver_one() == (None, False)
    assert queues.out.attributes() == {
        "ApproximateNumberOfMessages": 1,
        "ApproximateNumberOfMessagesNotVisible": 1,
    }

    queues.bring_back()
    assert queues.deliver_one()[1] is True
    assert [h.seconds for h in queues.hidden] == [600]  # Retry-After, longer than 5 minutes
    assert queues.deliver_one() == (None, False)
    queues.bring_back()
    assert queues.deliver_all() and queues.out.attributes()["ApproximateNumberOfMessages"] == 0

    assert ids_received(r) == [first.id, other.id, first.id, first.id, second.id]
    sent = json.loads(r.received[0].body)
    assert sent == {
        "type": "customer.updated",
        "timestamp": to_rfc3339(first.occurred_at),
        "data": {"customer_id": "cus_A", "name": "Åsa"},
    }
    assert all(got.body == r.received[0].body for got in r.received if got.headers["webhook-id"] == first.id)
    items = {d["event_id"]: d for d in deliveries(api, sub)}
    assert [a["status_code"] for a in items[first.id]["attempts"]] == [500, 503, 204]
    assert items[first.id]["attempts"][0]["response_excerpt"] == "oops"
    assert (items[first.id]["status"], items[first.id]["next_attempt_at"]) == ("succeeded", None)
    assert [d["status"] for d in deliveries(api, sub, "succeeded")] == ["succeeded"] * 3
    # The subscription was failing, and is no more.
    assert api.get(f"/webhook-subscriptions/{sub['id']}").json["failing_since"] is None


def test_a_410_disables_the_subscription_later_events_are_skipped_and_a_replay_sends_them_in_order(
    api, queues, clock, receivers
):
    r = receivers(Reply(410), Reply(204))
    watcher = receivers(Reply(204))
    sub = subscribe(api, r.url, ["customer.*"])
    subscribe(api, watcher.url, ["webhook.subscription_disabled"])
    before = clock.now()
    first = queues.publish(event("customer.updated", "cus_A", clock.now(), 1))
    queues.fan_out()
    queues.deliver_all()
    disabled = api.get(f"/webhook-subscriptions/{sub['id']}").json
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "gone")

    clock.advance(timedelta(minutes=1))
    later = [
        queues.publish(event("customer.updated", customer, clock.now(), n))
        for n, customer in enumerate(["cus_A", "cus_B", "cus_A"], start=2)
    ]
    queues.fan_out()  # the events, and webhook.subscription_disabled
    queues.deliver_all()
    assert ids_received(r) == [first.id]
    [notice] = watcher.received
    assert json.loads(notice.body)["type"] == "webhook.subscription_disabled"
    assert json.loads(notice.body)["data"] == {
        "subscription_id": sub["id"],
        "reason": "gone",
        "time": disabled["disabled_at"],
    }
    assert {d["event_id"] for d in deliveries(api, sub, "skipped")} == {e.id for e in later}
    assert [d["event_id"] for d in deliveries(api, sub, "failed")] == [first.id]

    since = {"since": to_rfc3339(before)}
    assert api.post(f"/webhook-subscriptions/{sub['id']}/replay", since).status == 409
    enabled = api.patch(f"/webhook-subscriptions/{sub['id']}", {"enabled": True})
    assert (enabled.json["enabled"], enabled.json["disabled_at"], enabled.json["disabled_reason"]) == (
        True,
        None,
        None,
    )
    replay = api.post(f"/webhook-subscriptions/{sub['id']}/replay", since)
    assert replay.status == 202, replay.json
    queues.deliver_all()
    assert ids_received(r) == [first.id, later[0].id, later[1].id, later[2].id]
    assert deliveries(api, sub, "skipped") == []
    assert [d["event_id"] for d in deliveries(api, sub, "succeeded")] == [e.id for e in reversed(later)]


def test_a_replay_walks_its_pages_and_sends_only_what_was_skipped_since_then(
    api, queues, clock, receivers, monkeypatch
):
    from chalicelib.services import webhook_outbound

    monkeypatch.setattr(webhook_outbound, "REPLAY_PAGE", 2)
    r = receivers(Reply(204))
    sub = subscribe(api, r.url, ["segment.*"])
    api.patch(f"/webhook-subscriptions/{sub['id']}", {"enabled": False})
    events = []
    for n in range(5):
        events.append(queues.publish(event("segment.joined", f"cus_{n % 2}", clock.now(), n)))
        clock.advance(timedelta(seconds=1))
    queues.fan_out()
    assert len(deliveries(api, sub, "skipped")) == 5
    api.patch(f"/webhook-subscriptions/{sub['id']}", {"enabled": True})
    since = to_rfc3339(events[1].occurred_at)
    assert api.post(f"/webhook-subscriptions/{sub['id']}/replay", {"since": since}).status == 202
    queues.deliver_all()
    assert ids_received(r) == [e.id for e in events[1:]]
    assert [d["event_id"] for d in deliveries(api, sub, "skipped")] == [events[0].id]


def test_a_receiver_that_hangs_is_an_attempt_without_a_status_code(
    api, queues, clock, receivers, short_timeout
):
    r = receivers(Reply(204, hang_s=2))
    sub = subscribe(api, r.url)
    queues.publish(event("case.escalated", "cus_A", clock.now()))
    queues.fan_out()
    assert queues.deliver_one()[1] is True
    [delivery] = deliveries(api, sub)
    [attempt] = delivery["attempts"]
    assert (attempt["status_code"], attempt["response_excerpt"]) == (None, "no answer within 0.3 s")
    assert 300 <= attempt["duration_ms"] < 1500
    assert delivery["status"] == "pending"
    assert delivery["next_attempt_at"] == to_rfc3339(clock.now() + timedelta(seconds=5))


def test_a_receiver_trickling_its_answer_is_a_recorded_attempt_ended_at_the_deadline(
    api, queues, clock, receivers, short_timeout
):
    # A byte every 50 ms: no read ever waits long, and the whole answer would take over 12 s
    # (on Lambda, past the function's timeout: no attempt would ever be recorded).
    r = receivers(Reply(204, drip_s=0.05))
    sub = subscribe(api, r.url)
    queues.publish(event("case.escalated", "cus_A", clock.now()))
    queues.fan_out()
    started = time.monotonic()
    assert queues.deliver_one()[1] is True
    assert time.monotonic() - started < 0.3 + 1.5
    [delivery] = deliveries(api, sub)
    [attempt] = delivery["attempts"]
    assert (attempt["status_code"], attempt["response_excerpt"]) == (None, "no answer within 0.3 s")
    assert 300 <= attempt["duration_ms"] < 1000
    assert (delivery["status"], queues.hidden[-1].seconds) == ("pending", 5)


def test_a_redirect_is_not_followed_and_is_retried(api, queues, clock, receivers):
    elsewhere = receivers(Reply(204))
    r = receivers(Reply(301, (("Location", elsewhere.url),)))
    sub = subscribe(api, r.url)
    queues.publish(event("segment.left", "cus_A", clock.now()))
    queues.fan_out()
    assert queues.deliver_one()[1] is True
    assert elsewhere.received == []
    assert deliveries(api, sub)[0]["attempts"][0]["status_code"] == 301


def test_deliveries_are_signed_and_verify_with_standard_webhooks_with_either_secret_after_a_rotation(
    api, queues, clock, receivers
):
    r = receivers(Reply(204))
    sub = subscribe(api, r.url)
    first_secret = sub["secret"]
    queues.publish(event("loyalty.tier_changed", "cus_A", clock.now(), 1, new_tier="gold"))
    queues.fan_out()
    queues.deliver_all()
    [got] = r.received
    assert got.headers["content-type"] == "application/json"
    assert got.headers["webhook-timestamp"] == str(int(clock.now().timestamp()))
    payload = Webhook(first_secret).verify(got.body, got.headers)
    assert payload["type"] == "loyalty.tier_changed" and payload["data"]["new_tier"] == "gold"

    rotated = api.post(f"/webhook-subscriptions/{sub['id']}/rotate-secret")
    assert rotated.status == 200 and rotated.json["secret"] != first_secret
    queues.publish(event("loyalty.tier_changed", "cus_A", clock.now(), 2))
    queues.fan_out()
    queues.deliver_all()
    after = r.received[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 2
    for secret in (first_secret, rotated.json["secret"]):
        Webhook(secret).verify(after.body, after.headers)
        assert verify([secret], after.headers, after.body, clock.now(), 300) == after.headers["webhook-id"]

    clock.advance(timedelta(hours=24, seconds=1))  # the old secret's overlap is over
    queues.publish(event("loyalty.tier_changed", "cus_A", clock.now(), 3))
    queues.fan_out()
    queues.deliver_all()
    assert len(r.received[-1].headers["webhook-signature"].split(" ")) == 1


def test_at_delivery_a_name_resolving_to_any_blocked_range_is_refused_and_nothing_is_connected(
    api, queues, clock, receivers, dns, short_timeout
):
    r = receivers(Reply(204))
    dns.names["hooks.example.com"] = ["93.184.216.34"]  # public when subscribed
    sub = subscribe(api, f"https://hooks.example.com:{r.port}/hooks")
    for n, (address, _) in enumerate(BLOCKED_ADDRESSES):
        dns.names["hooks.example.com"] = [address]
        queues.publish(event("segment.joined", f"cus_{n}", clock.now(), n))
        queues.fan_out()
        # Every lane's message (an earlier one may come back too, once its 5 s are over on a
        # slow machine: it is refused again).
        assert queues.deliver_all()
    found = deliveries(api, sub)
    assert len(found) == len(BLOCKED_ADDRESSES)
    excerpts = {d["attempts"][0]["response_excerpt"] for d in found}
    assert {d["attempts"][0]["status_code"] for d in found} == {None}
    for _, reason in BLOCKED_ADDRESSES:
        article = "an" if reason[0] in "aeiou" else "a"
        assert (
            f"refused: the URL names hooks.example.com, which resolves to {article} {reason} address"
            in excerpts
        )
    assert r.received == []


def test_a_redelivered_event_makes_one_delivery_and_one_post(api, queues, clock, receivers):
    from tests.integration.test_campaign_delivery import again

    r = receivers(Reply(204))
    sub = subscribe(api, r.url)
    queues.publish(event("case.escalated", "cus_A", clock.now()))
    [record] = queues.events.receive()
    assert queues.consume(queues.events, [record]) == set()
    assert queues.invoke(queues.events, [again(record, 2)]) == set()  # before it was sent
    queues.deliver_all()
    assert queues.invoke(queues.events, [again(record, 3)]) == set()  # and after
    queues.deliver_all()
    assert len(r.received) == 1
    assert len(deliveries(api, sub)) == 1


def test_a_subscription_failing_for_five_days_is_disabled_and_says_so(api, queues, clock, receivers):
    r = receivers(Reply(500))
    watcher = receivers(Reply(204))
    sub = subscribe(api, r.url, ["customer.*"])
    subscribe(api, watcher.url, ["webhook.*"])
    started = clock.now()
    queues.publish(event("customer.updated", "cus_A", clock.now(), 1))
    queues.fan_out()
    while queues.deliver_one()[0] is not None:
        queues.bring_back()
    [first] = deliveries(api, sub)
    assert (first["status"], len(first["attempts"])) == ("failed", 8)
    assert [h for h in queues.hidden] == []
    failing = api.get(f"/webhook-subscriptions/{sub['id']}").json
    assert (failing["enabled"], failing["failing_since"]) == (True, to_rfc3339(started))

    clock.advance(started + timedelta(days=5) - clock.now() - timedelta(seconds=4))
    second = queues.publish(event("customer.updated", "cus_A", clock.now(), 2))
    queues.fan_out()
    assert queues.deliver_one()[1] is True  # 4 s short of five days: retried
    assert api.get(f"/webhook-subscriptions/{sub['id']}").json["enabled"] is True
    queues.bring_back()
    assert queues.deliver_one()[1] is False  # five days: disabled, the message let go
    disabled = api.get(f"/webhook-subscriptions/{sub['id']}").json
    assert (disabled["enabled"], disabled["disabled_reason"]) == (False, "failing")
    assert {d["event_id"]: d["status"] for d in deliveries(api, sub)}[second.id] == "failed"
    queues.fan_out()
    queues.deliver_all()
    [notice] = watcher.received
    assert json.loads(notice.body)["data"]["subscription_id"] == sub["id"]
    assert json.loads(notice.body)["data"]["reason"] == "failing"


def test_an_attempt_recorded_by_a_rival_receiver_first_is_not_counted_twice(
    api, queues, clock, receivers, monkeypatch
):
    from dataclasses import replace

    from chalicelib.domain.webhook_subscriptions import Attempt

    r = receivers(Reply(500))
    sub = subscribe(api, r.url)
    queues.publish(event("segment.joined", "cus_A", clock.now()))
    queues.fan_out()
    repository = wiring.webhook_delivery_repository()
    real = WebhookSender.post

    def with_a_rival(sender, url, body, headers):
        answer = real(sender, url, body, headers)
        [found] = deliveries(api, sub)
        current = repository.get(sub["id"], found["id"])
        rival = current.with_attempt(
            Attempt(clock.now(), 502, 1, ""), "pending", clock.now() + timedelta(hours=1)
        )
        repository.update(current, replace(rival))
        return answer

    monkeypatch.setattr(WebhookSender, "post", with_a_rival)
    assert queues.deliver_one()[1] is True
    [delivery] = deliveries(api, sub)
    assert [a["status_code"] for a in delivery["attempts"]] == [502]  # the rival's only
    assert queues.hidden[-1].seconds == 3600  # hidden until the rival's next attempt


def test_the_consumer_knows_the_queues_max_receive_count():
    from pathlib import Path

    from chalicelib.events.webhooks_out import MAX_RECEIVES

    infra = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
    queue = infra["Resources"]["WebhooksOutQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES


def test_the_sweep_knows_how_long_the_queue_keeps_a_message():
    from pathlib import Path

    from chalicelib.domain.webhook_subscriptions import QUEUE_RETENTION

    infra = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
    queue = infra["Resources"]["WebhooksOutQueue"]["Properties"]
    assert timedelta(seconds=queue["MessageRetentionPeriod"]) == QUEUE_RETENTION


def test_on_its_last_receive_a_failing_delivery_is_failed_and_its_message_let_go(
    api, queues, clock, receivers
):
    r = receivers(Reply(500))
    sub = subscribe(api, r.url)
    queues.publish(event("segment.joined", "cus_A", clock.now()))
    queues.fan_out()
    [record] = queues.out.receive(1)
    record["attributes"]["ApproximateReceiveCount"] = "20"
    assert queues.consume(queues.out, [record]) == set()
    [delivery] = deliveries(api, sub)
    assert (delivery["status"], len(delivery["attempts"])) == ("failed", 1)
    assert queues.hidden == []


def test_a_failed_event_holds_back_the_later_events_of_its_customer_in_the_batch_only(
    api, queues, clock, receivers
):
    r = receivers(Reply(204))
    subscribe(api, r.url)
    sqs, url = queues.events.sqs, queues.events.url
    sqs.send_message(
        QueueUrl=url, MessageBody="not an event", MessageGroupId="cus_A", MessageDeduplicationId="bad"
    )
    held = queues.publish(event("segment.joined", "cus_A", clock.now(), 1))
    other = queues.publish(event("segment.joined", "cus_B", clock.now(), 2))
    records = queues.events.receive()
    assert len(records) == 3
    failed = queues.consume(queues.events, records)
    bodies = {r["messageId"]: r["body"] for r in records}
    assert sorted(bodies[m] for m in failed) == sorted(
        ["not an event", json.dumps(held.to_message(), sort_keys=True)]
    )
    queues.deliver_all()
    assert ids_received(r) == [other.id]


def test_an_event_still_queued_when_its_customer_is_erased_goes_to_no_webhook(
    api, queues, clock, receivers, pump
):
    r = receivers(Reply(204))
    sub = subscribe(api, r.url, ["customer.*", "interaction.*"])
    customer = api.create_customer(name="Jyrki Mäkelä", email="jyrki.erased@example.fi")
    assert api.post(f"/customers/{customer['id']}/erase").status == 202
    pump.drain()  # the erasure (its job, the purge); the events queue is left to this test
    while records := queues.events.receive():  # what the stream published, the erasure's too
        for record in records:
            queues.events.sqs.delete_message(
                QueueUrl=queues.events.url, ReceiptHandle=record["receiptHandle"]
            )
    # An event of theirs published before the erasure, read by the fan-out only after it:
    late = queues.publish(event("customer.updated", customer["id"], clock.now(), 1, name="Jyrki Mäkelä"))
    erased = queues.publish(event("customer.erased", customer["id"], clock.now(), 2))
    queues.fan_out()
    queues.deliver_all()
    assert ids_received(r) == [erased.id]
    assert [d["event_id"] for d in deliveries(api, sub)] == [erased.id]
    assert late.id not in json.dumps(deliveries(api, sub))


def test_a_delivery_of_a_customer_erased_after_the_fan_out_read_the_tombstones_is_deleted_not_sent(
    api, queues, clock, receivers, pump, monkeypatch
):
    from chalicelib.events import webhooks_out

    r = receivers(Reply(204))
    sub = subscribe(api, r.url, ["customer.*"])
    customer = api.create_customer(name="Aino Virtanen", email="aino.erased@example.fi")
    assert api.post(f"/customers/{customer['id']}/erase").status == 202
    pump.drain()  # the erasure, its purge included: nothing of theirs is left to find
    while records := queues.events.receive():
        for record in records:
            queues.events.sqs.delete_message(
                QueueUrl=queues.events.url, ReceiptHandle=record["receiptHandle"]
            )
    # The fan-out read the batch's tombstones just before the erasure committed, and wrote
    # the delivery just after its purge.
    monkeypatch.setattr(webhooks_out, "_erased_among", lambda records: set())
    late = queues.publish(event("customer.updated", customer["id"], clock.now(), 1, name="Aino Virtanen"))
    queues.fan_out()
    [written] = deliveries(api, sub)
    assert written["event_id"] == late.id
    record, failed = queues.deliver_one()
    assert record is not None and not failed  # the message let go
    assert r.received == []
    assert deliveries(api, sub) == []
    assert wiring.webhook_delivery_repository().get(sub["id"], written["id"]) is None


def _lose(queues, receipt_handle: str) -> None:
    """The message is gone from the queue (dead-lettered, or past its retention)."""
    queues.out.sqs.delete_message(QueueUrl=queues.out.url, ReceiptHandle=receipt_handle)


def test_an_attempted_delivery_whose_message_the_queue_gave_up_is_failed_by_the_sweep_and_its_lane_goes_on(
    api, queues, clock, receivers, pump
):
    r = receivers(Reply(500), Reply(204))
    sub = subscribe(api, r.url)
    first = queues.publish(event("segment.joined", "cus_A", clock.now(), 1))
    second = queues.publish(event("segment.joined", "cus_A", clock.now() + timedelta(milliseconds=5), 2))
    queues.fan_out()
    assert queues.deliver_one()[1] is True  # the first attempt of the first: 500, retried in 5 s
    _lose(queues, queues.hidden.pop().receipt_handle)

    clock.advance(timedelta(days=2, seconds=5))  # two days past the attempt it waited for
    assert pump.trigger("sweep_webhook_deliveries") == {"failed": 0, "skipped": 0, "finished": True}
    clock.advance(timedelta(seconds=1))
    assert pump.trigger("sweep_webhook_deliveries") == {"failed": 1, "skipped": 0, "finished": True}
    found = {d["event_id"]: d for d in deliveries(api, sub)}
    assert found[first.id]["status"] == "failed"
    assert [(a["status_code"], a["response_excerpt"]) for a in found[first.id]["attempts"]] == [
        (500, ""),
        (None, "no attempt finished: the delivery was given up by the queue"),
    ]
    # Never attempted, behind the first in its lane: the queue may hold it for 14 days.
    assert (found[second.id]["status"], found[second.id]["attempts"]) == ("pending", [])
    assert [d["event_id"] for d in deliveries(api, sub, "failed")] == [first.id]

    queues.deliver_all()
    assert ids_received(r) == [first.id, second.id]
    assert {d["event_id"]: d["status"] for d in deliveries(api, sub)}[second.id] == "succeeded"


def test_a_delivery_that_outlived_the_queue_s_retention_is_failed_and_counts_as_a_failure(
    api, queues, clock, receivers, pump
):
    r = receivers(Reply(204))
    sub = subscribe(api, r.url)
    queues.publish(event("segment.joined", "cus_A", clock.now()))
    queues.fan_out()
    [record] = queues.out.receive(1)
    _lose(queues, record["receiptHandle"])

    clock.advance(timedelta(days=15))
    assert pump.trigger("sweep_webhook_deliveries")["failed"] == 0
    assert deliveries(api, sub, "pending") != []
    clock.advance(timedelta(seconds=1))
    assert pump.trigger("sweep_webhook_deliveries")["failed"] == 1
    [delivery] = deliveries(api, sub, "failed")
    [attempt] = delivery["attempts"]
    assert (attempt["at"], attempt["status_code"], attempt["duration_ms"]) == (
        to_rfc3339(clock.now()),
        None,
        0,
    )
    assert deliveries(api, sub, "pending") == []
    assert api.get(f"/webhook-subscriptions/{sub['id']}").json["failing_since"] == to_rfc3339(clock.now())
    assert pump.trigger("sweep_webhook_deliveries")["failed"] == 0  # done with
    assert r.received == []
