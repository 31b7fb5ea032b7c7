"""Outbound webhook repositories: subscriptions and their deliveries (the webhooks table,
store/models/webhook_subscriptions.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib.domain import storage
from chalicelib.domain.clock import optional_rfc3339, parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.domain.webhook_secrets import Secret
from chalicelib.domain.webhook_subscriptions import Attempt, Delivery, Subscription
from chalicelib.store.models.webhook_subscriptions import (
    DELIVERY_PREFIX,
    SUBSCRIPTION_PREFIX,
    SUBSCRIPTIONS_PK,
    AttemptAttribute,
    DeliveryModel,
    SecretAttribute,
    SubscriptionCountModel,
    SubscriptionModel,
    SubscriptionStateModel,
)
from chalicelib.store.pagination import Key, keys_of, newest_under, query_page
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction

# Deliveries are kept this long (TTL): what GET …/deliveries lists and a replay can send again.
DELIVERY_LIFETIME = timedelta(days=30)
CLOCK_MARGIN = timedelta(minutes=1)
_CONDITION_FAILED = "ConditionalCheckFailedException"


def _subscription(item: SubscriptionModel) -> Subscription:
    return Subscription(
        id=item.sk,
        url=item.url,
        events=tuple(item.events or ()),
        description=item.description,
        enabled=bool(item.enabled),
        secrets=tuple(
            Secret(s.value, parse_rfc3339(s.created_at), parse_optional_rfc3339(s.expires_at))
            for s in item.secrets or ()
        ),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 1),
        failing_since=parse_optional_rfc3339(item.failing_since),
        disabled_at=parse_optional_rfc3339(item.disabled_at),
        disabled_reason=item.disabled_reason,
        disabled_notified=item.disabled_notified is not False,
    )


def _secrets(subscription: Subscription) -> list[SecretAttribute]:
    return [
        SecretAttribute(
            value=s.value, created_at=to_rfc3339(s.created_at), expires_at=optional_rfc3339(s.expires_at)
        )
        for s in subscription.secrets
    ]


def _item(subscription: Subscription) -> SubscriptionModel:
    return SubscriptionModel(
        SUBSCRIPTIONS_PK,
        subscription.id,
        url=subscription.url,
        events=list(subscription.events),
        description=subscription.description,
        enabled=subscription.enabled,
        secrets=_secrets(subscription),
        failing_since=optional_rfc3339(subscription.failing_since),
        disabled_at=optional_rfc3339(subscription.disabled_at),
        disabled_reason=subscription.disabled_reason,
        disabled_notified=subscription.disabled_notified,
        created_at=to_rfc3339(subscription.created_at),
        updated_at=to_rfc3339(subscription.updated_at),
    )


_WRITTEN = (
    "url",
    "events",
    "description",
    "enabled",
    "failing_since",
    "disabled_at",
    "disabled_reason",
    "disabled_notified",
    "updated_at",
)


class SubscriptionRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def add(self, subscription: Subscription, at_most: int) -> Subscription:
        """The subscription and the count, in one transaction: LimitReached when `at_most`
        subscriptions exist already (two creates racing at the bound cannot both pass it)."""
        count = SubscriptionCountModel.count
        try:
            with transaction(self._region) as t:
                t.update(
                    SubscriptionCountModel(),
                    actions=[count.add(1)],
                    condition=count.does_not_exist() | (count < at_most),
                )
                t.save(_item(subscription), condition=SubscriptionModel.sk.does_not_exist())
        except TransactWriteError as error:
            # PynamoDB sends puts before updates: the count's condition is the second.
            if failed_conditions(error)[1:2] == [True]:
                raise storage.LimitReached(SUBSCRIPTIONS_PK) from None
            raise
        return replace(subscription, version=1)

    def get(self, subscription_id: str, *, consistent: bool = False) -> Subscription | None:
        try:
            item = SubscriptionModel.get(SUBSCRIPTIONS_PK, subscription_id, consistent_read=consistent)
        except DoesNotExist:
            return None
        return _subscription(item)

    def list(self, limit: int, start: Key | None) -> tuple[list[Subscription], Key | None]:
        return query_page(
            SubscriptionModel.query,
            SUBSCRIPTIONS_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=_subscription,
        )

    def all(self) -> list[Subscription]:
        """Every subscription, strongly consistent (one Query page: MAX_SUBSCRIPTIONS are small)."""
        return [
            _subscription(item) for item in SubscriptionModel.query(SUBSCRIPTIONS_PK, consistent_read=True)
        ]

    def update(self, before: Subscription, after: Subscription) -> Subscription:
        """What changed from `before`, at its version (VersionConflict otherwise)."""
        old, new = _item(before), _item(after)
        actions = []
        for name in _WRITTEN:
            value = getattr(new, name)
            if value == getattr(old, name):
                continue
            attribute = getattr(SubscriptionModel, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        if after.secrets != before.secrets:
            actions.append(SubscriptionModel.secrets.set(_secrets(after)))
        item = SubscriptionModel(SUBSCRIPTIONS_PK, before.id, version=before.version)
        with versioned_transaction(self._region, before.id) as t:
            t.update(item, actions=actions)
        return replace(after, version=before.version + 1)

    def delete(self, subscription: Subscription) -> None:
        """At its version (VersionConflict otherwise), the count with it."""
        item = SubscriptionModel(SUBSCRIPTIONS_PK, subscription.id, version=subscription.version)
        try:
            with transaction(self._region) as t:
                t.delete(item)
                t.update(SubscriptionCountModel(), actions=[SubscriptionCountModel.count.add(-1)])
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                raise storage.VersionConflict(subscription.id) from None
            raise

    # What deliveries change, without the version: staff's If-Match is not theirs to break.

    def _state(self, subscription_id: str, actions: list, condition) -> bool:
        try:
            SubscriptionStateModel(SUBSCRIPTIONS_PK, subscription_id).update(
                actions=actions, condition=SubscriptionStateModel.sk.exists() & condition
            )
        except UpdateError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def start_failing(self, subscription_id: str, at: datetime) -> bool:
        """Mark the subscription failing since `at`, unless it was already (or is gone)."""
        return self._state(
            subscription_id,
            [SubscriptionStateModel.failing_since.set(to_rfc3339(at))],
            SubscriptionStateModel.failing_since.does_not_exist(),
        )

    def stop_failing(self, subscription_id: str) -> bool:
        return self._state(
            subscription_id,
            [SubscriptionStateModel.failing_since.remove()],
            SubscriptionStateModel.failing_since.exists(),
        )

    def notified(self, subscription_id: str) -> bool:
        """Its disabling is published (while it is still disabled)."""
        return self._state(
            subscription_id,
            [SubscriptionStateModel.disabled_notified.set(True)],
            SubscriptionStateModel.enabled == False,  # noqa: E712 - a condition expression
        )


def delivery_key(subscription_id: str, delivery_id: str) -> tuple[str, str]:
    return f"{SUBSCRIPTION_PREFIX}{subscription_id}", f"{DELIVERY_PREFIX}{delivery_id}"


def _status_pk(subscription_id: str, status: str) -> str:
    return f"{subscription_id}#{status}"


def status_sk(delivery: Delivery) -> str:
    """Orders a subscription's deliveries of a status as they were made: events of one customer
    are fanned out one after the other, in the events queue's order, and each delivery made
    later than the one before (services/webhook_outbound.py), while events' own times are
    often the same second. Written once; a change of status moves only `status_pk`."""
    return f"{to_rfc3339(delivery.created_at, timespec='microseconds')}#{delivery.id}"


def _attempt(a: AttemptAttribute) -> Attempt:
    return Attempt(
        at=parse_rfc3339(a.at),
        status_code=int(a.status_code) if a.status_code is not None else None,
        duration_ms=int(a.duration_ms),
        response_excerpt=a.response_excerpt or "",
    )


def _attempts(delivery: Delivery) -> list[AttemptAttribute]:
    return [
        AttemptAttribute(
            at=to_rfc3339(a.at),
            status_code=a.status_code,
            duration_ms=a.duration_ms,
            response_excerpt=a.response_excerpt or None,
        )
        for a in delivery.attempts
    ]


def _delivery(item: DeliveryModel) -> Delivery:
    return Delivery(
        id=item.id,
        subscription_id=item.subscription_id,
        event_id=item.event_id,
        type=item.type,
        customer_id=item.customer_id or "",
        body=item.body,
        status=item.status,
        created_at=parse_rfc3339(item.created_at),
        attempts=tuple(_attempt(a) for a in item.attempts or ()),
        attempt_count=int(item.attempt_count or 0),
        retries=int(item.retries or 0),
        next_attempt_at=parse_optional_rfc3339(item.next_attempt_at),
        version=int(item.version or 1),
        round_started_at=parse_optional_rfc3339(item.round_started_at),
    )


def _delivery_item(delivery: Delivery) -> DeliveryModel:
    pk, sk = delivery_key(delivery.subscription_id, delivery.id)
    customer = delivery.customer_id or None
    return DeliveryModel(
        pk,
        sk,
        id=delivery.id,
        subscription_id=delivery.subscription_id,
        event_id=delivery.event_id,
        type=delivery.type,
        customer_id=customer,
        body=delivery.body,
        status=delivery.status,
        attempts=_attempts(delivery),
        attempt_count=delivery.attempt_count,
        retries=delivery.retries,
        next_attempt_at=optional_rfc3339(delivery.next_attempt_at),
        round_started_at=optional_rfc3339(delivery.round_started_at),
        created_at=to_rfc3339(delivery.created_at),
        status_pk=_status_pk(delivery.subscription_id, delivery.status),
        status_sk=status_sk(delivery),
        # Erasure finds every item holding a customer's data through GSI by_customer.
        customer_pk=customer,
        customer_sk=f"{pk}|{sk}" if customer else None,
        expires_at=int((delivery.created_at + DELIVERY_LIFETIME).timestamp()),
    )


class DeliveryRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def add(self, delivery: Delivery) -> bool:
        """Write the delivery unless it exists: False if it did (a redelivered event)."""
        try:
            _delivery_item(delivery).save(condition=DeliveryModel.sk.does_not_exist())
        except PutError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                return False
            raise
        return True

    def get(self, subscription_id: str, delivery_id: str, *, consistent: bool = True) -> Delivery | None:
        try:
            return _delivery(
                DeliveryModel.get(*delivery_key(subscription_id, delivery_id), consistent_read=consistent)
            )
        except DoesNotExist:
            return None

    def _actions(self, delivery: Delivery) -> list:
        item = _delivery_item(delivery)
        return [
            DeliveryModel.status.set(item.status),
            DeliveryModel.status_pk.set(item.status_pk),
            DeliveryModel.attempts.set(item.attempts),
            DeliveryModel.attempt_count.set(item.attempt_count),
            DeliveryModel.retries.set(item.retries),
            DeliveryModel.next_attempt_at.set(item.next_attempt_at)
            if item.next_attempt_at
            else DeliveryModel.next_attempt_at.remove(),
            DeliveryModel.round_started_at.set(item.round_started_at)
            if item.round_started_at
            else DeliveryModel.round_started_at.remove(),
        ]

    def update(self, before: Delivery, after: Delivery) -> Delivery:
        """`after`'s status and attempts, at `before`'s version: VersionConflict if another
        receiver (or a retry) changed it first, so an attempt is never counted twice."""
        item = DeliveryModel(*delivery_key(before.subscription_id, before.id), version=before.version)
        try:
            item.update(actions=self._actions(after), condition=DeliveryModel.sk.exists())
        except UpdateError as error:
            if error.cause_response_code == _CONDITION_FAILED:
                raise storage.VersionConflict(before.id) from None
            raise
        return replace(after, version=before.version + 1)

    def requeue(self, before: Delivery, after: Delivery) -> Delivery:
        """`update` for a request (a manual retry): a transaction, so a keyed request that
        committed it is known to have done so when it comes again."""
        item = DeliveryModel(*delivery_key(before.subscription_id, before.id), version=before.version)
        with versioned_transaction(self._region, before.id) as t:
            t.update(item, actions=self._actions(after), condition=DeliveryModel.sk.exists())
        return replace(after, version=before.version + 1)

    def delete(self, delivery: Delivery) -> None:
        """The delivery goes, whatever its version (its customer was erased)."""
        DeliveryModel(*delivery_key(delivery.subscription_id, delivery.id)).delete(
            add_version_condition=False
        )

    def pending_made_before(
        self, subscription_id: str, before: datetime, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]:
        """The subscription's pending deliveries made before `before`, oldest first (GSI
        by_status, whose sort key starts with the time each was made; the index lags the
        table, so each is read again before it is changed)."""
        return query_page(
            DeliveryModel.by_status.query,
            _status_pk(subscription_id, "pending"),
            DeliveryModel.status_sk < to_rfc3339(before, timespec="microseconds"),
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk", "status_pk", "status_sk"),
            to_domain=_delivery,
        )

    def list(
        self, subscription_id: str, status: str | None, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]:
        """Newest first; of one status through GSI by_status."""
        if status is None:
            pk, _ = delivery_key(subscription_id, "")
            return newest_under(
                DeliveryModel, pk, DELIVERY_PREFIX, limit=limit, start=start, to_domain=_delivery
            )
        return query_page(
            DeliveryModel.by_status.query,
            _status_pk(subscription_id, status),
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk", "status_pk", "status_sk"),
            to_domain=_delivery,
            scan_index_forward=False,
        )

    def skipped_since(
        self, subscription_id: str, since: datetime, first_id: str, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]:
        """The subscription's skipped deliveries of events since `since` (their ids from
        `first_id` on), in the order they were made (GSI by_status: the index lags the table,
        so each is read again before it is changed). A delivery is made after its event, so
        the walk starts at `since`, a margin earlier for clocks apart."""
        return query_page(
            DeliveryModel.by_status.query,
            _status_pk(subscription_id, "skipped"),
            DeliveryModel.status_sk >= to_rfc3339(since - CLOCK_MARGIN, timespec="microseconds"),
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk", "status_pk", "status_sk"),
            to_domain=_delivery,
            page_size=limit + 1,
            filter_condition=DeliveryModel.id >= first_id,
        )
