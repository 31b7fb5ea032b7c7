"""Outbound webhook use cases of staff: subscriptions (their URL, events and secrets), their
deliveries, a delivery sent again by hand, and a replay of what was skipped while a
subscription was disabled. The sending is services/webhook_outbound.py's."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from chalicelib.domain import attempts, ids, storage
from chalicelib.domain.clock import Clock
from chalicelib.domain.webhook_secrets import first_secret, rotated
from chalicelib.domain.webhook_subscriptions import (
    MANUAL,
    MAX_SUBSCRIPTIONS,
    PENDING,
    SUCCEEDED,
    Delivery,
    Subscription,
    UrlRefused,
)
from chalicelib.errors import Conflict, FieldError, NotFound, PreconditionFailed, Unprocessable
from chalicelib.services.versions import update_at_version
from chalicelib.services.webhook_outbound import (
    Deliveries,
    Queue,
    Subscriptions,
    lane_message,
    replay_message,
)
from chalicelib.store.pagination import CursorCodec, Key, Page, page_of

REPLAY = "rpl"


class SubscriptionStore(Subscriptions, Protocol):
    def add(self, subscription: Subscription, at_most: int) -> Subscription: ...
    def list(self, limit: int, start: Key | None) -> tuple[list[Subscription], Key | None]: ...
    def delete(self, subscription: Subscription) -> None: ...


class DeliveryStore(Deliveries, Protocol):
    def list(
        self, subscription_id: str, status: str | None, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]: ...
    def requeue(self, before: Delivery, after: Delivery) -> Delivery: ...


@dataclass(frozen=True)
class Replay:
    id: str
    subscription_id: str
    since: datetime


class WebhookSubscriptionService:
    def __init__(
        self,
        subscriptions: SubscriptionStore,
        deliveries: DeliveryStore,
        queue: Callable[[], Queue],
        check_url: Callable[[str], object],
        clock: Clock,
        cursors: CursorCodec | None = None,
    ) -> None:
        self._subscriptions = subscriptions
        self._deliveries = deliveries
        self._queue = queue
        self._check_url = check_url
        self._clock = clock
        self._cursors = cursors

    def _checked_url(self, url: str) -> str:
        """UrlRefused as a 422 naming `url`: checked with DNS now, and again on every delivery."""
        try:
            self._check_url(url)
        except UrlRefused as refused:
            raise Unprocessable(
                f"The URL is refused: it {refused.message}.", errors=[FieldError("url", refused.message)]
            ) from None
        return url

    def create(self, fields: Mapping) -> Subscription:
        """A new subscription, enabled, with its first secret (the response shows it once)."""
        now = self._clock.now()
        if attempts.repeating():
            # The retry of a request that committed answers what it wrote, secret included.
            upcoming = ids.next_id(ids.WEBHOOK_SUBSCRIPTION, now)
            earlier = self._subscriptions.get(upcoming, consistent=True) if upcoming else None
            if earlier is not None:
                return earlier
        url = self._checked_url(fields["url"])
        subscription = Subscription(
            id=ids.new_id(ids.WEBHOOK_SUBSCRIPTION, now),
            url=url,
            events=tuple(fields["events"]),
            description=fields.get("description"),
            enabled=True,
            secrets=first_secret(now),
            created_at=now,
            updated_at=now,
        )
        try:
            return self._subscriptions.add(subscription, MAX_SUBSCRIPTIONS)
        except storage.LimitReached:
            raise Conflict(
                f"There are {MAX_SUBSCRIPTIONS} webhook subscriptions, the most there can be: "
                "delete one first."
            ) from None

    def get(self, subscription_id: str, *, consistent: bool = False) -> Subscription:
        subscription = self._subscriptions.get(subscription_id, consistent=consistent)
        if subscription is None:
            raise NotFound(f"No webhook subscription has the id {subscription_id!r}.")
        return subscription

    def list(self, limit: int, cursor: str | None) -> Page[Subscription]:
        return page_of(
            self._cursors,
            "webhook-subscriptions",
            cursor,
            lambda start: self._subscriptions.list(limit, start),
        )

    def update(self, subscription_id: str, changes: Mapping, if_match: int | None) -> Subscription:
        """Any of url, events, description, enabled. Enabling a disabled subscription clears
        its failure state; disabling one (staff) publishes nothing."""
        if "url" in changes:
            self._checked_url(changes["url"])

        def write(before: Subscription) -> Subscription:
            now = self._clock.now()
            after = before
            if "enabled" in changes and changes["enabled"] != before.enabled:
                after = after.enabled_again(now) if changes["enabled"] else after.disabled(MANUAL, now)
            for name in ("url", "events", "description"):
                if name in changes:
                    value = tuple(changes[name]) if name == "events" else changes[name]
                    after = replace(after, **{name: value})
            if after == before:
                return before
            return self._subscriptions.update(before, replace(after, updated_at=now))

        return update_at_version(
            "webhook subscription", lambda: self.get(subscription_id, consistent=True), write, if_match
        )

    def delete(self, subscription_id: str, if_match: int | None) -> None:
        """Its queued deliveries are dropped when they come up; its delivery records expire."""
        subscription = self.get(subscription_id, consistent=True)
        if if_match is not None and subscription.version != if_match:
            raise PreconditionFailed(
                f"The webhook subscription is at version {subscription.version}, not {if_match}: "
                "re-read it and retry."
            )
        try:
            self._subscriptions.delete(subscription)
        except storage.VersionConflict:
            raise PreconditionFailed(
                "The webhook subscription was changed by another request: re-read it and retry."
            ) from None

    def rotate_secret(self, subscription_id: str) -> Subscription:
        """A new secret; the others stay valid for 24 hours (deliveries are signed with each)."""

        def write(before: Subscription) -> Subscription:
            now = self._clock.now()
            return self._subscriptions.update(
                before, replace(before, secrets=rotated(before.secrets, now), updated_at=now)
            )

        return update_at_version(
            "webhook subscription", lambda: self.get(subscription_id, consistent=True), write, None
        )

    # Deliveries

    def deliveries(
        self, subscription_id: str, status: str | None, limit: int, cursor: str | None
    ) -> Page[Delivery]:
        self.get(subscription_id)
        return page_of(
            self._cursors,
            f"webhook-subscriptions/{subscription_id}/deliveries?{status or ''}",
            cursor,
            lambda start: self._deliveries.list(subscription_id, status, limit, start),
        )

    def _delivery(self, subscription_id: str, delivery_id: str) -> Delivery:
        delivery = self._deliveries.get(subscription_id, delivery_id)
        if delivery is None:
            raise NotFound(f"Webhook subscription {subscription_id!r} has no delivery {delivery_id!r}.")
        return delivery

    def retry(self, subscription_id: str, delivery_id: str) -> Delivery:
        """Send a failed or skipped delivery again, for a new round of attempts (409 for one
        pending or succeeded, or while the subscription is disabled)."""
        subscription = self.get(subscription_id, consistent=True)
        delivery = self._delivery(subscription_id, delivery_id)
        if delivery.status in (PENDING, SUCCEEDED):
            raise Conflict(
                f"The delivery is {delivery.status}: only a failed or skipped one is sent again.",
                errors=[FieldError("status", f"is {delivery.status}, not failed or skipped")],
            )
        if not subscription.enabled:
            raise Conflict(
                "The webhook subscription is disabled: enable it (PATCH enabled: true) first.",
                errors=[FieldError("enabled", "is false")],
            )
        # The message first: if the change below does not happen, its consumer makes it.
        self._queue().send_messages([lane_message(delivery, delivery.retries + 1)])
        try:
            return self._deliveries.requeue(delivery, delivery.requeued(self._clock.now()))
        except storage.VersionConflict:
            return self._delivery(subscription_id, delivery_id)

    def replay(self, subscription_id: str, since: datetime) -> Replay:
        """Queue the replay of the subscription's skipped deliveries of events since `since`,
        in their order (the consumer walks them page by page); 409 while it is disabled."""
        subscription = self.get(subscription_id, consistent=True)
        if not subscription.enabled:
            raise Conflict(
                "The webhook subscription is disabled: enable it (PATCH enabled: true) before a replay.",
                errors=[FieldError("enabled", "is false")],
            )
        replay = Replay(ids.new_id(REPLAY, self._clock.now()), subscription_id, since)
        self._queue().send_messages([replay_message(subscription_id, replay.id, since)])
        return replay
