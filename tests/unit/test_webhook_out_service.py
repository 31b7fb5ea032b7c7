"""The outbound webhook service with in-memory fakes: what a message received early, twice, on
its last receive or after its delivery's round was started elsewhere does; a disabling whose
event could not be published; an event too large to send; fan-outs that stopped half-way."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.domain import storage
from chalicelib.domain.clock import FrozenClock
from chalicelib.domain.webhook_secrets import first_secret
from chalicelib.domain.webhook_subscriptions import (
    FAILED,
    PENDING,
    SKIPPED,
    SUCCEEDED,
    Attempt,
    Subscription,
    delivery_id,
)
from chalicelib.services.webhook_outbound import WebhookOutbound

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Subscriptions:
    def __init__(self) -> None:
        self.items: dict[str, Subscription] = {}

    def get(self, subscription_id, *, consistent=False):
        return self.items.get(subscription_id)

    def all(self):
        return list(self.items.values())

    def update(self, before, after):
        if self.items.get(before.id) != before:
            raise storage.VersionConflict(before.id)
        self.items[before.id] = replace(after, version=before.version + 1)
        return self.items[before.id]

    def start_failing(self, subscription_id, at):
        self.items[subscription_id] = replace(self.items[subscription_id], failing_since=at)
        return True

    def stop_failing(self, subscription_id):
        self.items[subscription_id] = replace(self.items[subscription_id], failing_since=None)
        return True

    def notified(self, subscription_id):
        self.items[subscription_id] = replace(self.items[subscription_id], disabled_notified=True)
        return True


class Deliveries:
    def __init__(self) -> None:
        self.items: dict[str, object] = {}

    def add(self, delivery):
        if delivery.id in self.items:
            return False
        self.items[delivery.id] = delivery
        return True

    def get(self, subscription_id, delivery_id, *, consistent=True):
        return self.items.get(delivery_id)

    def update(self, before, after):
        if self.items.get(before.id) != before:
            raise storage.VersionConflict(before.id)
        self.items[before.id] = replace(after, version=before.version + 1)
        return self.items[before.id]

    def skipped_since(self, subscription_id, since, first_id, limit, start):
        found = sorted(d for d in self.items if d >= first_id and self.items[d].status == SKIPPED)
        return [self.items[d] for d in found], None

    def delete(self, delivery):
        self.items.pop(delivery.id, None)

    def pending_made_before(self, subscription_id, before, limit, start):
        found = sorted(
            (d for d in self.items.values() if d.subscription_id == subscription_id),
            key=lambda d: d.created_at,
        )
        return [d for d in found if d.status == PENDING and d.created_at < before], None


class Queue:
    def __init__(self) -> None:
        self.sent: list = []

    def send_messages(self, messages):
        self.sent += messages


@dataclass
class Answer:
    status_code: int | None
    headers: dict
    excerpt: str = ""
    duration_ms: int = 3


class Sender:
    def __init__(self, *codes: int | None) -> None:
        self.codes = list(codes)
        self.posts: list = []

    def post(self, url, body, headers):
        self.posts.append((url, body, headers))
        return Answer(self.codes.pop(0) if len(self.codes) > 1 else self.codes[0], {})


class World:
    def __init__(self, *codes: int | None) -> None:
        self.erased: set[str] = set()
        self.clock = FrozenClock(NOW)
        self.subscriptions, self.deliveries, self.queue = Subscriptions(), Deliveries(), Queue()
        self.sender = Sender(*(codes or (204,)))
        self.published: list = []
        self.fail_publishing = False
        self.service = WebhookOutbound(
            self.subscriptions,
            self.deliveries,
            lambda: self.queue,
            lambda: self.sender,
            self.publish,
            self.clock,
            lambda: 0.5,
            lambda customer_id: customer_id in self.erased,
        )

    def publish(self, event) -> None:
        if self.fail_publishing:
            raise RuntimeError("SQS is down")
        self.published.append(event)

    def subscription(self, sub_id="sub_1", **fields) -> Subscription:
        sub = replace(
            Subscription(
                sub_id, "https://hooks.example.com/", ("*",), None, True, first_secret(NOW), NOW, NOW
            ),
            **fields,
        )
        self.subscriptions.items[sub_id] = sub
        return sub

    def event(self, n=1, customer="cus_1", **extra) -> dict:
        return {
            "id": f"evt_{n}",
            "type": "customer.updated",
            "occurred_at": "2026-11-26T12:00:00.000Z",
            "customer_id": customer,
            "data": {"customer_id": customer, **extra},
        }

    def delivery(self, n=1, sub_id="sub_1"):
        return self.deliveries.items[delivery_id(sub_id, f"evt_{n}", NOW)]


def test_an_event_fanned_out_again_queues_only_what_was_never_attempted():
    world = World(204)
    world.subscription("sub_1")
    world.subscription("sub_2", enabled=False)
    assert world.service.fan_out(world.event()) == 1
    assert world.delivery(sub_id="sub_2").status == SKIPPED
    assert world.service.fan_out(world.event()) == 1  # written, maybe not sent: sent again
    assert world.service.deliver("sub_1", world.delivery().id).result == "succeeded"
    assert world.service.fan_out(world.event()) == 0
    assert len(world.deliveries.items) == 2
    assert [m.dedup_id for m in world.queue.sent] == [world.delivery().id] * 2


def test_an_event_over_20_kb_is_sent_to_no_webhook():
    world = World()
    world.subscription()
    assert world.service.fan_out(world.event(note="x" * 21_000)) == 0
    assert world.deliveries.items == {}


def test_a_message_back_before_its_time_is_hidden_for_the_rest_of_the_wait():
    world = World(500)
    world.subscription()
    world.service.fan_out(world.event())
    assert world.service.deliver("sub_1", world.delivery().id).delay_s == 5
    world.clock.advance(timedelta(seconds=2))
    assert world.service.deliver("sub_1", world.delivery().id).result == "waiting"
    assert world.service.deliver("sub_1", world.delivery().id).delay_s == 3
    assert len(world.sender.posts) == 1


def test_on_its_last_receive_a_delivery_is_attempted_at_once_and_a_failure_is_final():
    world = World(500)
    world.subscription()
    world.service.fan_out(world.event())
    world.service.deliver("sub_1", world.delivery().id)
    outcome = world.service.deliver("sub_1", world.delivery().id, last_receive=True)
    assert (outcome.result, outcome.delay_s) == ("failed", None)
    assert (world.delivery().status, len(world.delivery().attempts)) == (FAILED, 2)


def test_a_message_of_a_retry_whose_delivery_was_not_set_pending_sets_it_and_sends():
    world = World(204)
    world.subscription()
    world.service.fan_out(world.event())
    d = world.delivery()
    world.deliveries.items[d.id] = replace(d, status=FAILED)
    assert world.service.deliver("sub_1", d.id, retry=2).result == "dropped"  # not its round
    assert world.service.deliver("sub_1", d.id).result == "dropped"  # the first round's message
    assert world.service.deliver("sub_1", d.id, retry=1).result == "succeeded"
    assert (world.delivery().status, world.delivery().retries) == (SUCCEEDED, 1)


def test_a_pending_delivery_of_a_disabled_subscription_is_skipped_and_a_deleted_one_dropped():
    world = World(204)
    sub = world.subscription()
    world.service.fan_out(world.event())
    world.subscriptions.items["sub_1"] = replace(sub, enabled=False)
    assert world.service.deliver("sub_1", world.delivery().id).result == "skipped"
    assert world.delivery().status == SKIPPED
    del world.subscriptions.items["sub_1"]
    assert world.service.deliver("sub_1", world.delivery().id).result == "dropped"
    assert world.sender.posts == []


def test_a_disabling_whose_event_was_not_published_is_published_by_the_next_message():
    world = World(410)
    world.subscription()
    world.service.fan_out(world.event(1))
    world.service.fan_out(world.event(2, customer="cus_2"))
    world.fail_publishing = True
    with pytest.raises(RuntimeError):
        world.service.deliver("sub_1", world.delivery(1).id)
    assert world.subscriptions.items["sub_1"].enabled is False
    world.fail_publishing = False
    assert world.service.deliver("sub_1", world.delivery(2).id).result == "skipped"
    [event] = world.published
    assert (event.type, event.data["reason"]) == ("webhook.subscription_disabled", "gone")
    world.service.deliver("sub_1", world.delivery(2).id)
    assert len(world.published) == 1


def test_a_success_clears_the_failing_state_and_a_failure_sets_it_once():
    world = World(500, 500, 204)
    world.subscription()
    world.service.fan_out(world.event())
    world.service.deliver("sub_1", world.delivery().id)
    assert world.subscriptions.items["sub_1"].failing_since == NOW
    world.clock.advance(timedelta(seconds=6))
    world.service.deliver("sub_1", world.delivery().id)
    assert world.subscriptions.items["sub_1"].failing_since == NOW
    world.clock.advance(timedelta(seconds=301))
    assert world.service.deliver("sub_1", world.delivery().id).result == "succeeded"
    assert world.subscriptions.items["sub_1"].failing_since is None
    assert [a.status_code for a in world.delivery().attempts] == [500, 500, 204]


def test_a_replay_page_queues_each_message_before_setting_its_delivery_pending():
    world = World(204)
    world.subscription(enabled=False)
    for n in (1, 2):
        world.service.fan_out(world.event(n))
    world.subscriptions.items["sub_1"] = replace(world.subscriptions.items["sub_1"], enabled=True)
    assert world.service.replay_page("sub_1", "rpl_1", NOW, 0, None) == 2
    assert [m.body.get("retry") for m in world.queue.sent] == [1, 1]
    assert {d.status for d in world.deliveries.items.values()} == {PENDING}


def test_a_fan_out_publishes_a_disabling_not_yet_published_once_per_batch():
    world = World()
    world.subscription(enabled=False, disabled_at=NOW, disabled_reason="failing", disabled_notified=False)
    snapshot = world.subscriptions.all()
    world.service.fan_out(world.event(1), snapshot)
    world.service.fan_out(world.event(2), snapshot)
    [event] = world.published
    assert (event.type, event.data["reason"]) == ("webhook.subscription_disabled", "failing")
    assert world.subscriptions.items["sub_1"].disabled_notified is True


def test_a_personal_event_of_a_customer_erased_since_its_fan_out_is_deleted_and_never_sent():
    world = World(204)
    world.subscription()
    world.service.fan_out(world.event(1))  # customer.updated: personal
    world.service.fan_out({**world.event(2), "type": "customer.erased", "data": {"customer_id": "cus_1"}})
    first, erased = world.delivery(1), world.delivery(2)
    world.erased.add("cus_1")
    assert world.service.deliver("sub_1", first.id).result == "erased"
    assert first.id not in world.deliveries.items
    assert world.service.deliver("sub_1", erased.id).result == "succeeded"  # no personal data
    assert [headers["webhook-id"] for _, _, headers in world.sender.posts] == ["evt_2"]


def _lost(world: World, n: int = 1, sub_id: str = "sub_1") -> None:
    """Delivery n attempted once, its message gone since: two days and a second past the
    attempt it waited for."""
    world.service.deliver(sub_id, world.delivery(n, sub_id).id)
    world.clock.advance(timedelta(days=2, seconds=6))


def test_the_sweep_fails_a_lost_delivery_and_a_subscription_failing_for_five_days_is_disabled():
    world = World(500)
    world.subscription(failing_since=NOW - timedelta(days=3))
    world.service.fan_out(world.event(1))
    _lost(world)
    swept = world.service.sweep()
    assert (swept.failed, swept.skipped, swept.finished) == (1, 0, True)
    delivery = world.delivery(1)
    assert delivery.status == FAILED
    assert [(a.status_code, a.response_excerpt) for a in delivery.attempts] == [
        (500, ""),
        (None, "no attempt finished: the delivery was given up by the queue"),
    ]
    subscription = world.subscriptions.items["sub_1"]
    assert (subscription.enabled, subscription.disabled_reason) == (False, "failing")
    [event] = world.published
    assert (event.type, event.data["reason"]) == ("webhook.subscription_disabled", "failing")


def test_the_sweep_keeps_a_lost_delivery_of_a_disabled_subscription_as_skipped():
    world = World(500)
    sub = world.subscription()
    world.service.fan_out(world.event(1))
    _lost(world)
    world.subscriptions.items["sub_1"] = replace(sub, enabled=False, failing_since=None)
    assert world.service.sweep().skipped == 1
    assert (world.delivery(1).status, len(world.delivery(1).attempts)) == (SKIPPED, 1)
    assert world.subscriptions.items["sub_1"].failing_since is None


def test_an_attempt_that_finishes_while_the_sweep_gives_its_delivery_up_wins():
    world = World(500)
    world.subscription()
    world.service.fan_out(world.event(1))
    _lost(world)
    read = world.deliveries.get

    def read_then_attempted(subscription_id, delivery_id, *, consistent=True):
        found = read(subscription_id, delivery_id)
        late = found.with_attempt(Attempt(world.clock.now(), 204, 5, ""), SUCCEEDED, None)
        world.deliveries.items[delivery_id] = replace(late, version=found.version + 1)
        return found

    world.deliveries.get = read_then_attempted
    assert world.service.sweep().failed == 0
    assert world.delivery(1).status == SUCCEEDED
