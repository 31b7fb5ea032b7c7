"""Outbound webhooks at work (the consumers of events/webhooks_out.py): each event of the
events queue becomes a delivery per subscription that takes it, each delivery is POSTed,
signed, and tried again on Svix's schedule until it succeeds or its last attempt fails, and
a replay sends a subscription's skipped deliveries again, page by page.

Deliveries travel the webhooks-out FIFO queue in lanes, one per subscription and customer
(`<sub id>#<customer id>`): SQS hands out one message of a lane at a time and holds the
later ones while it is hidden for its retry, so one customer's events reach a subscription in
order, while other customers' go on. A message names the delivery (and, for a manual retry
or a replay, its round: `retry`); the delivery item says what to do, so a message received
twice, early or late does no harm."""

from __future__ import annotations

import contextlib
import logging
import math
import random as _random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from chalicelib.domain import storage
from chalicelib.domain.clock import Clock, Deadline, parse_rfc3339, to_rfc3339
from chalicelib.domain.events import PERSONAL, Event, subscription_disabled_event
from chalicelib.domain.webhook_secrets import valid
from chalicelib.domain.webhook_signatures import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from chalicelib.domain.webhook_subscriptions import (
    FAILED,
    FAILING,
    FAILING_LIMIT,
    GIVEN_UP,
    GONE,
    MAX_BODY_BYTES,
    MAX_DELAY_S,
    PENDING,
    SKIPPED,
    STUCK_AFTER,
    SUCCEEDED,
    Attempt,
    Delivery,
    Subscription,
    body_of,
    delivery_id,
    first_delivery_id_at,
    parse_retry_after,
    retry_delay_s,
)
from chalicelib.services.versions import retry_lost_races
from chalicelib.store.pagination import Key

log = logging.getLogger(__name__)

REPLAY_PAGE = 25
SWEEP_PAGE = 100
# A message received this long or less before its delivery's next attempt is tried now.
EARLY_SLACK = timedelta(seconds=1)


class Answer(Protocol):
    status_code: int | None
    headers: Mapping[str, str]
    excerpt: str
    duration_ms: int


class Sender(Protocol):
    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer: ...


class Subscriptions(Protocol):
    def get(self, subscription_id: str, *, consistent: bool = False) -> Subscription | None: ...
    def all(self) -> list[Subscription]: ...
    def update(self, before: Subscription, after: Subscription) -> Subscription: ...
    def start_failing(self, subscription_id: str, at: datetime) -> bool: ...
    def stop_failing(self, subscription_id: str) -> bool: ...
    def notified(self, subscription_id: str) -> bool: ...


class Deliveries(Protocol):
    def add(self, delivery: Delivery) -> bool: ...
    def get(self, subscription_id: str, delivery_id: str, *, consistent: bool = True) -> Delivery | None: ...
    def update(self, before: Delivery, after: Delivery) -> Delivery: ...
    def delete(self, delivery: Delivery) -> None: ...
    def skipped_since(
        self, subscription_id: str, since: datetime, first_id: str, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]: ...
    def pending_made_before(
        self, subscription_id: str, before: datetime, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]: ...


class Queue(Protocol):
    def send_messages(self, messages: Sequence[Any]) -> None: ...


@dataclass(frozen=True)
class Message:
    body: dict
    group_id: str
    dedup_id: str


def lane(subscription_id: str, customer_id: str) -> str:
    return f"{subscription_id}#{customer_id}"


def lane_message(delivery: Delivery, retry: int = 0) -> Message:
    """The queue message of a delivery; `retry` n > 0 for its n-th manual retry or replay
    (another de-duplication id: SQS would drop a second message of the same id for 5 minutes)."""
    body: dict = {"subscription_id": delivery.subscription_id, "delivery_id": delivery.id}
    if retry:
        body["retry"] = retry
    dedup = delivery.id if not retry else f"{delivery.id}#retry{retry}"
    return Message(body, lane(delivery.subscription_id, delivery.customer_id), dedup)


def replay_message(
    subscription_id: str, replay_id: str, since: datetime, page: int = 0, start: Key | None = None
) -> Message:
    body = {
        "type": "replay",
        "subscription_id": subscription_id,
        "replay_id": replay_id,
        "since": to_rfc3339(since),
        "page": page,
        "start": start,
    }
    # Its own lane: the pages of a replay follow each other, and hold up no delivery.
    return Message(body, f"{subscription_id}#replay", f"{replay_id}#{page}")


@dataclass(frozen=True)
class Outcome:
    """What became of a delivery message: `delay_s` set means receive it again after that
    long (it stays on the queue, hidden); otherwise it is done with."""

    result: str  # succeeded, failed, retrying, waiting, skipped, dropped, erased
    delay_s: int | None = None


@dataclass(frozen=True)
class Swept:
    """What a sweep did: deliveries given up as `failed`, kept as `skipped` (their subscription
    is disabled), and whether it stopped before the end for lack of time."""

    failed: int = 0
    skipped: int = 0
    finished: bool = True


def signature(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """Every valid secret's signature, space-separated (a receiver that has either secret of
    a rotation verifies it)."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


class WebhookOutbound:
    def __init__(
        self,
        subscriptions: Subscriptions,
        deliveries: Deliveries,
        queue: Callable[[], Queue],
        sender: Callable[[], Sender],
        publish: Callable[[Event], None],
        clock: Clock,
        random: Callable[[], float] = _random.random,
        erased: Callable[[str], bool] = lambda customer_id: False,
    ) -> None:
        """`erased(customer_id)`: whether the customer is erased, read strongly consistent."""
        self._erased = erased
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._queue = queue
        self._sender = sender
        self._publish = publish
        self._clock = clock
        self._random = random
        self._made: datetime | None = None
        self._notified: set[str] = set()

    def _now_after_the_last(self) -> datetime:
        """Now, but later than every delivery made before: a customer's events are fanned out
        one after the other, and their deliveries keep that order (store: status_sk)."""
        now = self._clock.now()
        if self._made is not None and now <= self._made:
            now = self._made + timedelta(microseconds=1)
        self._made = now
        return now

    # Fan-out

    def fan_out(self, message: Mapping[str, Any], subscriptions: Sequence[Subscription] | None = None) -> int:
        """A delivery for each subscription that takes the event (`message`: Event.to_message())
        — pending, or skipped while the subscription is disabled — and the pending ones queued.
        The deliveries' ids derive from the event: an event fanned out again writes nothing new
        (and queues again only what may not have been queued). Returns the messages queued."""
        event_id, event_type = str(message["id"]), str(message["type"])
        timestamp = str(message["occurred_at"])
        occurred_at = parse_rfc3339(timestamp)
        customer_id = str(message.get("customer_id") or "")
        body = body_of(event_type, timestamp, message.get("data") or {})
        if len(body.encode()) > MAX_BODY_BYTES:
            log.warning(
                "event %s (%s) is over %d bytes: not sent to webhooks", event_id, event_type, MAX_BODY_BYTES
            )
            return 0
        now = self._now_after_the_last()
        outgoing = []
        for subscription in self._subscriptions.all() if subscriptions is None else subscriptions:
            self._notify(subscription)
            if not subscription.takes(event_type):
                continue
            delivery = Delivery(
                id=delivery_id(subscription.id, event_id, occurred_at),
                subscription_id=subscription.id,
                event_id=event_id,
                type=event_type,
                customer_id=customer_id,
                body=body,
                status=PENDING if subscription.enabled else SKIPPED,
                created_at=now,
            )
            if self._deliveries.add(delivery):
                if delivery.status == PENDING:
                    outgoing.append(lane_message(delivery))
                continue
            # Written by an earlier fan-out of this event, which may have stopped before
            # queueing it: queued again (SQS, then the delivery's status, drop a duplicate).
            earlier = self._deliveries.get(subscription.id, delivery.id)
            if earlier is not None and earlier.status == PENDING and not earlier.attempts:
                outgoing.append(lane_message(earlier, earlier.retries))
        if outgoing:
            self._queue().send_messages(outgoing)
        return len(outgoing)

    # Delivery

    def deliver(
        self,
        subscription_id: str,
        delivery_id: str,
        retry: int = 0,
        *,
        last_receive: bool = False,
        _again: int = 0,
    ) -> Outcome:
        """One message of the queue: attempt the delivery if it is due. On the message's
        `last_receive` (the next would put it on the dead-letter queue) it is attempted now,
        and a failure is final."""
        if _again > 3:
            return Outcome("waiting", 1)  # others keep changing it: come back in a moment
        subscription = self._subscriptions.get(subscription_id, consistent=True)
        if subscription is None:
            return Outcome("dropped")  # the subscription was deleted
        self._notify(subscription)
        delivery = self._deliveries.get(subscription_id, delivery_id)
        if delivery is None:
            return Outcome("dropped")  # expired, or erased with its customer
        if delivery.status in (FAILED, SKIPPED) and retry and retry == delivery.retries + 1:
            if not subscription.enabled:
                return Outcome("dropped")
            # A manual retry or replay whose message went out before its delivery was set
            # pending (the request or the replay page stopped in between): set it now.
            try:
                delivery = self._deliveries.update(
                    delivery, replace(delivery.requeued(self._clock.now()), retries=retry)
                )
            except storage.VersionConflict:
                return self.deliver(
                    subscription_id, delivery_id, retry, last_receive=last_receive, _again=_again + 1
                )
        if delivery.status != PENDING:
            return Outcome("dropped")  # done with (a message received again)
        if not subscription.enabled:
            try:
                self._deliveries.update(delivery, replace(delivery, status=SKIPPED, next_attempt_at=None))
            except storage.VersionConflict:
                return self.deliver(
                    subscription_id, delivery_id, retry, last_receive=last_receive, _again=_again + 1
                )
            return Outcome("skipped")
        now = self._clock.now()
        early = delivery.next_attempt_at is not None and delivery.next_attempt_at > now + EARLY_SLACK
        if early and not last_receive:
            # Back before its time (its visibility could not be set, or a duplicate message):
            # hidden again for the rest of the wait.
            return Outcome("waiting", _seconds_until(delivery.next_attempt_at, now))
        if delivery.type in PERSONAL and delivery.customer_id and self._erased(delivery.customer_id):
            # Erased after the fan-out read the tombstones (or while this waited in its lane):
            # the erasure deleted what it found, this goes too, and nothing of theirs is sent.
            self._deliveries.delete(delivery)
            log.info("delivery %s of an erased customer deleted, not sent", delivery.id)
            return Outcome("erased")
        return self._attempt(subscription, delivery, now, last_receive)

    def _attempt(
        self, subscription: Subscription, delivery: Delivery, now: datetime, last: bool = False
    ) -> Outcome:
        body = delivery.body.encode()
        timestamp = int(now.timestamp())
        headers = {
            "content-type": "application/json",
            ID_HEADER: delivery.event_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(valid(subscription.secrets, now), delivery.event_id, timestamp, body),
        }
        answer = self._sender().post(subscription.url, body, headers)
        attempt = Attempt(now, answer.status_code, answer.duration_ms, answer.excerpt)
        code = answer.status_code
        if code is not None and 200 <= code < 300:
            self._record(delivery, attempt, SUCCEEDED, None)
            if subscription.failing_since is not None:
                self._subscriptions.stop_failing(subscription.id)
            return Outcome("succeeded")
        if code == 410:
            self._record(delivery, attempt, FAILED, None)
            self._disable(subscription, GONE, now)
            return Outcome("failed")
        failing_since = subscription.failing_since
        if failing_since is not None and now - failing_since >= FAILING_LIMIT:
            # This failure disables the subscription: the delivery is failed, the others
            # pending (and every later one) are skipped, for a replay once it is enabled again.
            self._record(delivery, attempt, FAILED, None)
            self._disable(subscription, FAILING, now)
            return Outcome("failed")
        if failing_since is None:
            self._subscriptions.start_failing(subscription.id, now)
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now)
        delay = retry_delay_s(delivery.attempt_count + 1, self._random, retry_after)
        if delay is None or last:
            self._record(delivery, attempt, FAILED, None)
            return Outcome("failed")
        recorded = self._record(delivery, attempt, PENDING, now + timedelta(seconds=delay))
        if recorded is None:
            return self._after_lost_race(delivery, now)
        return Outcome("retrying", delay)

    def _record(
        self, delivery: Delivery, attempt: Attempt, status: str, next_attempt_at: datetime | None
    ) -> Delivery | None:
        """The attempt written at the version read: None if another receiver of the delivery
        recorded one first (this attempt is then not counted: the receiver got one more)."""
        try:
            return self._deliveries.update(delivery, delivery.with_attempt(attempt, status, next_attempt_at))
        except storage.VersionConflict:
            log.warning("delivery %s changed during its attempt: this attempt is not counted", delivery.id)
            return None

    def _after_lost_race(self, delivery: Delivery, now: datetime) -> Outcome:
        current = self._deliveries.get(delivery.subscription_id, delivery.id)
        if current is None or current.status != PENDING:
            return Outcome("dropped")
        if current.next_attempt_at is not None and current.next_attempt_at > now:
            return Outcome("waiting", _seconds_until(current.next_attempt_at, now))
        return Outcome("waiting", 1)

    def _disable(self, subscription: Subscription, reason: str, now: datetime) -> None:
        def attempt() -> Subscription | None:
            current = self._subscriptions.get(subscription.id, consistent=True)
            if current is None or not current.enabled:
                return None  # deleted, or disabled by someone else
            return self._subscriptions.update(current, current.disabled(reason, now))

        disabled = retry_lost_races(attempt, lambda: None)
        if disabled is not None:
            log.warning("webhook subscription %s disabled: %s", subscription.id, reason)
            self._notify(disabled)

    def _notify(self, subscription: Subscription) -> None:
        """Publish webhook.subscription_disabled for a disabling not yet published (this one,
        or one whose publishing failed: its id is the same, so it is published once)."""
        if subscription.enabled or subscription.disabled_notified or subscription.disabled_at is None:
            return
        if subscription.id in self._notified:
            return  # published by this invocation already (a batch holds a snapshot)
        self._publish(
            subscription_disabled_event(
                subscription.id, subscription.disabled_reason or "", subscription.disabled_at
            )
        )
        self._notified.add(subscription.id)
        self._subscriptions.notified(subscription.id)

    # Sweep

    def sweep(self, deadline: Deadline | None = None) -> Swept:
        """Give up the pending deliveries whose queue message is gone (`Delivery.given_up_by_the_queue`:
        it went to the dead-letter queue, or outlived the queue's retention): each is `failed`,
        with an attempt that says so, and counts as a failure of its subscription — or is
        `skipped` while the subscription is disabled, as its message would have made it. Each
        change is made at the version read: an attempt that finishes meanwhile wins. With a
        `deadline`, stops between pages once it has passed (the next sweep starts over)."""
        now = self._clock.now()
        failed = skipped = 0
        subscriptions = self._subscriptions.all()
        # Each hour from another subscription: a sweep cut short never starves the last ones.
        turn = int(now.timestamp() // 3600) % max(1, len(subscriptions))
        for subscription in subscriptions[turn:] + subscriptions[:turn]:
            start: Key | None = None
            failures = 0
            while True:
                found, start = self._deliveries.pending_made_before(
                    subscription.id, now - STUCK_AFTER, SWEEP_PAGE, start
                )
                for candidate in found:
                    if candidate.given_up_by_the_queue(now):
                        status = self._give_up(subscription, candidate, now)
                        failures += status == FAILED
                        skipped += status == SKIPPED
                if start is None:
                    break
                if deadline is not None and deadline.remaining() <= 0:
                    self._count_failure(subscription.id, failures, now)
                    return Swept(failed + failures, skipped, finished=False)
            self._count_failure(subscription.id, failures, now)
            failed += failures
        return Swept(failed, skipped)

    def _give_up(self, subscription: Subscription, candidate: Delivery, now: datetime) -> str | None:
        # The index lags the table: read again, and changed only if still lost.
        current = self._deliveries.get(subscription.id, candidate.id)
        if current is None or not current.given_up_by_the_queue(now):
            return None
        if subscription.enabled:
            after = current.with_attempt(Attempt(now, None, 0, GIVEN_UP), FAILED, None)
        else:
            after = replace(current, status=SKIPPED, next_attempt_at=None)
        try:
            self._deliveries.update(current, after)
        except storage.VersionConflict:
            return None  # an attempt finished meanwhile: it stands
        log.warning("delivery %s given up by the queue: %s", current.id, after.status)
        return after.status

    def _count_failure(self, subscription_id: str, failures: int, now: datetime) -> None:
        """Failures of the subscription, as a failed attempt counts: failing from now, or
        disabled when it has been failing for FAILING_LIMIT."""
        if not failures:
            return
        subscription = self._subscriptions.get(subscription_id, consistent=True)
        if subscription is None or not subscription.enabled:
            return
        if subscription.failing_since is None:
            self._subscriptions.start_failing(subscription_id, now)
        elif now - subscription.failing_since >= FAILING_LIMIT:
            self._disable(subscription, FAILING, now)

    # Replay

    def replay_page(
        self, subscription_id: str, replay_id: str, since: datetime, page: int, start: Key | None
    ) -> int:
        """Queue one page of the subscription's skipped deliveries since `since`, oldest first,
        and the replay's next page. Each message goes out before its delivery is set pending
        (the consumer sets it if this stops in between), so none is lost. Returns how many."""
        subscription = self._subscriptions.get(subscription_id, consistent=True)
        if subscription is None or not subscription.enabled:
            return 0
        found, next_key = self._deliveries.skipped_since(
            subscription_id, since, first_delivery_id_at(since), REPLAY_PAGE, start
        )
        # The index lags the table: each is read again, and only what is still skipped is sent.
        current = [self._deliveries.get(subscription_id, d.id) for d in found]
        items = [d for d in current if d is not None and d.status == SKIPPED]
        messages = [lane_message(d, d.retries + 1) for d in items]
        if next_key is not None:
            messages.append(replay_message(subscription_id, replay_id, since, page + 1, next_key))
        if messages:
            self._queue().send_messages(messages)
        for delivery in items:
            # Set pending by its own message's consumer already, if this fails.
            with contextlib.suppress(storage.VersionConflict):
                self._deliveries.update(delivery, delivery.requeued(self._clock.now()))
        return len(items)


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, min(MAX_DELAY_S, math.ceil((moment - now).total_seconds())))
