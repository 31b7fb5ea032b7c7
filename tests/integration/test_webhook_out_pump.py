"""Outbound webhooks under the local event pump, as `make run` runs them: the pump drains the
events queue and the webhooks-out queue, a failed delivery's message stays hidden for its
retry's delay and comes back after it, and drain() does not wait for it meanwhile."""

from __future__ import annotations

import time

import pytest

from chalicelib import wiring
from chalicelib.domain.clock import Clock, parse_rfc3339
from tests.functional.conftest import Api
from tests.webhook_out_queues import Queue, event
from tests.webhook_out_receiver import Reply, receiver


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def test_the_pump_delivers_and_brings_a_hidden_message_back_after_its_delay(api, webhook_pump, monkeypatch):
    from chalicelib.config import get_settings

    monkeypatch.setattr(wiring, "clock", Clock())  # real time: the hiding is SQS's (moto's)
    monkeypatch.setattr(wiring, "webhook_jitter", lambda: 0.0)  # the first retry after 4 s (5 s - 20 %)
    r = receiver([Reply(500), Reply(204)])
    try:
        sub = api.post("/webhook-subscriptions", {"url": r.url, "events": ["segment.*"]}).json
        published = wiring.event_publisher().publish
        sent = event("segment.joined", "cus_A", wiring.clock.now())
        published(sent)
        webhook_pump.drain(timeout=20)
        assert len(r.received) == 1  # drain did not wait for the hidden message to come back
        events = Queue(get_settings().events_queue_name, "fan_out_events", 10)
        assert events.attributes() == {
            "ApproximateNumberOfMessages": 0,
            "ApproximateNumberOfMessagesNotVisible": 0,
        }
        [delivery] = api.get(f"/webhook-subscriptions/{sub['id']}/deliveries").json["items"]
        assert (delivery["status"], len(delivery["attempts"])) == ("pending", 1)

        first_attempt = time.monotonic()
        while len(r.received) < 2 and time.monotonic() - first_attempt < 15:
            webhook_pump.poll_once(schedules=False)
            time.sleep(0.05)
        assert len(r.received) == 2
        assert [got.headers["webhook-id"] for got in r.received] == [sent.id, sent.id]
        webhook_pump.drain(timeout=20)
        [delivery] = api.get(f"/webhook-subscriptions/{sub['id']}/deliveries").json["items"]
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 204]
        first, second = (parse_rfc3339(a["at"]) for a in delivery["attempts"])
        assert (second - first).total_seconds() >= 4 - 0.5  # back only once its delay was over
    finally:
        r.stop()


def test_the_pump_runs_the_sweep_of_lost_deliveries_every_hour(webhook_pump):
    sweep = webhook_pump.schedules["sweep_webhook_deliveries"]
    assert (sweep.expression, sweep.period) == ("rate(1 hour)", 3600)
    assert webhook_pump.trigger("sweep_webhook_deliveries") == {"failed": 0, "skipped": 0, "finished": True}
