"""Inbound webhook repository: sources, deliveries and external-id guards in the webhooks
table (models/webhook_sources.py), and `forget_customer`, which removes a customer from every
item of the table that names them, inbound or outbound (GSI by_customer)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib.domain import storage
from chalicelib.domain.clock import Deadline, parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.domain.webhook_secrets import Secret
from chalicelib.domain.webhook_sources import Delivery, Guard, Source
from chalicelib.store.models.webhook_sources import (
    DELETED_SK,
    DELIVERY_PREFIX,
    SOURCE_PREFIX,
    SOURCES_PK,
    DeletedSourceModel,
    ExternalIdGuardModel,
    InboundDeliveryModel,
    WebhookCustomerItemModel,
    WebhookSourceModel,
)
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import BATCH_WRITE_ITEMS, error_code, failed_conditions, transaction

CONDITION_FAILED = "ConditionalCheckFailedException"


def source_pk(source_id: str) -> str:
    return SOURCE_PREFIX + source_id


def customer_keys(customer_id: str, pk: str, sk: str) -> dict[str, str]:
    """The by_customer index's attributes of an item naming the customer."""
    return {"customer_pk": customer_id, "customer_sk": f"{pk}|{sk}"}


def _secrets_json(secrets: tuple[Secret, ...]) -> str:
    return json.dumps(
        [
            {
                "secret": s.value,
                "created_at": to_rfc3339(s.created_at, "microseconds"),
                "expires_at": to_rfc3339(s.expires_at, "microseconds") if s.expires_at else None,
            }
            for s in sorted(secrets, key=lambda s: s.created_at, reverse=True)
        ]
    )


def _source(item: WebhookSourceModel) -> Source:
    return Source(
        id=item.sk,
        name=item.name,
        kind=item.kind,
        secrets=tuple(
            Secret(s["secret"], parse_rfc3339(s["created_at"]), parse_optional_rfc3339(s.get("expires_at")))
            for s in json.loads(item.secrets)
        ),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 1),
    )


def _delivery(item: InboundDeliveryModel) -> Delivery:
    return Delivery(
        source_id=item.source_id,
        id=item.webhook_id,
        received_at=parse_rfc3339(item.received_at),
        type=item.type,
        status=item.status,
        payload=json.loads(item.payload) if item.payload else None,
        customer_id=item.customer_id,
        interaction_id=item.interaction_id,
        error=item.error,
        processed_at=parse_optional_rfc3339(item.processed_at),
        named_customer_id=item.customer_pk,
    )


def _guard(item: ExternalIdGuardModel) -> Guard:
    return Guard(
        source_id=item.pk.removeprefix(SOURCE_PREFIX),
        key=item.sk,
        customer_id=item.customer_id,
        interaction_id=item.interaction_id,
        claimed_at=parse_rfc3339(item.claimed_at),
    )


class WebhookSourceRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    # Sources

    def add_source(self, source: Source) -> Source:
        item = WebhookSourceModel(
            SOURCES_PK,
            source.id,
            name=source.name,
            kind=source.kind,
            secrets=_secrets_json(source.secrets),
            created_at=to_rfc3339(source.created_at),
            updated_at=to_rfc3339(source.updated_at),
        )
        try:
            item.save(condition=WebhookSourceModel.sk.does_not_exist())
        except PutError as error:
            if error_code(error) == CONDITION_FAILED:
                raise storage.AlreadyExists(source.id) from error
            raise
        return _source(item)

    def get_source(self, source_id: str, *, consistent: bool = False) -> Source | None:
        try:
            return _source(WebhookSourceModel.get(SOURCES_PK, source_id, consistent_read=consistent))
        except DoesNotExist:
            return None

    def list_sources(self, limit: int, start: Key | None) -> tuple[list[Source], Key | None]:
        return query_page(
            WebhookSourceModel.query,
            SOURCES_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=_source,
        )

    def update_secrets(self, before: Source, after: Source) -> Source:
        """VersionConflict unless the stored source is still at `before`'s version."""
        item = WebhookSourceModel(SOURCES_PK, before.id, version=before.version)
        try:
            item.update(
                actions=[
                    WebhookSourceModel.secrets.set(_secrets_json(after.secrets)),
                    WebhookSourceModel.updated_at.set(to_rfc3339(after.updated_at)),
                ]
            )
        except UpdateError as error:
            if error_code(error) == CONDITION_FAILED:
                raise storage.VersionConflict(before.id) from error
            raise
        return replace(after, version=before.version + 1)

    def delete_source(self, source: Source, at: datetime) -> None:
        """Delete the source (VersionConflict unless it is at `source`'s version) and, in the
        same transaction, mark its partition deleted: what it left is purged (`purge_source`)."""
        try:
            with transaction(self._region) as t:
                t.delete(WebhookSourceModel(SOURCES_PK, source.id, version=source.version))
                t.save(DeletedSourceModel(source_pk(source.id), DELETED_SK, deleted_at=to_rfc3339(at)))
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                raise storage.VersionConflict(source.id) from error
            raise

    def deleted(self, source_id: str) -> bool:
        """Whether the source was deleted and what it left is not purged yet."""
        try:
            DeletedSourceModel.get(source_pk(source_id), DELETED_SK, consistent_read=True)
        except DoesNotExist:
            return False
        return True

    # Deliveries

    def add_delivery(self, delivery: Delivery) -> Delivery:
        """AlreadyExists if the source has a delivery of that webhook-id."""
        pk = source_pk(delivery.source_id)
        item = InboundDeliveryModel(
            pk,
            DELIVERY_PREFIX + delivery.id,
            source_id=delivery.source_id,
            webhook_id=delivery.id,
            type=delivery.type,
            received_at=to_rfc3339(delivery.received_at),
            status=delivery.status,
            payload=json.dumps(delivery.payload, sort_keys=True, ensure_ascii=False)
            if delivery.payload is not None
            else None,
            time_pk=pk,
            time_sk=f"{to_rfc3339(delivery.received_at, 'microseconds')}#{delivery.id}",
            expires_at=int(delivery.expires_at.timestamp()),
            **(
                customer_keys(delivery.named_customer_id, pk, DELIVERY_PREFIX + delivery.id)
                if delivery.named_customer_id
                else {}
            ),
        )
        try:
            item.save(condition=InboundDeliveryModel.sk.does_not_exist())
        except PutError as error:
            if error_code(error) == CONDITION_FAILED:
                raise storage.AlreadyExists(delivery.id) from error
            raise
        return _delivery(item)

    def get_delivery(self, source_id: str, webhook_id: str, *, consistent: bool = True) -> Delivery | None:
        try:
            item = InboundDeliveryModel.get(
                source_pk(source_id), DELIVERY_PREFIX + webhook_id, consistent_read=consistent
            )
        except DoesNotExist:
            return None
        return _delivery(item)

    def deliveries(
        self, source_id: str, status: str | None, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]:
        """A source's deliveries, newest first (GSI by_time), of one status if given."""
        options: dict = {"scan_index_forward": False}
        if status is not None:
            # A filter may drop most of a page: pages of the limit's size until enough came.
            options |= {"filter_condition": InboundDeliveryModel.status == status, "page_size": limit + 1}
        return query_page(
            InboundDeliveryModel.by_time.query,
            source_pk(source_id),
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk", "time_pk", "time_sk"),
            to_domain=_delivery,
            **options,
        )

    def finish(self, delivery: Delivery) -> bool:
        """Write the final status (processed or failed) and drop the payload, unless the
        delivery is final already (False): the first outcome stands."""
        pk, sk = source_pk(delivery.source_id), DELIVERY_PREFIX + delivery.id
        model = InboundDeliveryModel
        actions = [
            model.status.set(delivery.status),
            model.processed_at.set(to_rfc3339(delivery.processed_at or delivery.received_at)),
            model.payload.remove(),
        ]
        for name in ("customer_id", "interaction_id", "error"):
            value = getattr(delivery, name)
            if value is not None:
                actions.append(getattr(model, name).set(value))
        if delivery.customer_id is not None:
            keys = customer_keys(delivery.customer_id, pk, sk)
            actions += [
                model.customer_pk.set(keys["customer_pk"]),
                model.customer_sk.set(keys["customer_sk"]),
            ]
        try:
            model(pk, sk).update(actions=actions, condition=model.sk.exists() & (model.status == "received"))
        except UpdateError as error:
            if error_code(error) == CONDITION_FAILED:
                return False
            raise
        return True

    # External-id guards

    def guard(self, source_id: str, key: str) -> Guard | None:
        try:
            return _guard(ExternalIdGuardModel.get(source_pk(source_id), key, consistent_read=True))
        except DoesNotExist:
            return None

    def claim(self, guard: Guard) -> None:
        """AlreadyExists if the external id is claimed (then read it: `guard`)."""
        pk = source_pk(guard.source_id)
        item = ExternalIdGuardModel(
            pk,
            guard.key,
            customer_id=guard.customer_id,
            interaction_id=guard.interaction_id,
            claimed_at=to_rfc3339(guard.claimed_at),
            **customer_keys(guard.customer_id, pk, guard.key),
        )
        try:
            item.save(condition=ExternalIdGuardModel.sk.does_not_exist())
        except PutError as error:
            if error_code(error) == CONDITION_FAILED:
                raise storage.AlreadyExists(guard.key) from error
            raise

    # What goes with a source or a customer

    def purge_source(self, source_id: str, deadline: Deadline | None = None) -> tuple[int, bool]:
        """Delete what a deleted source left, its deliveries and guards, a page of 25 at a
        time, and its DELETED mark last: how many items went, and whether all did. With a
        `deadline`, it stops after the page during which the deadline passed (call again: what
        is deleted is not found again, and what came meanwhile is)."""
        pk = source_pk(source_id)
        removed = 0
        with WebhookCustomerItemModel.batch_write() as batch:
            items = WebhookCustomerItemModel.query(
                pk, attributes_to_get=["pk", "sk"], page_size=BATCH_WRITE_ITEMS
            )
            for item in items:
                if item.sk == DELETED_SK:
                    continue
                batch.delete(item)
                removed += 1
                if deadline is not None and removed % BATCH_WRITE_ITEMS == 0 and deadline.remaining() <= 0:
                    return removed, False  # leaving the block writes what is pending
        WebhookCustomerItemModel(pk, DELETED_SK).delete()
        return removed, True

    def forget(self, customer_id: str) -> int:
        return forget_customer(customer_id)


# What an erasure leaves of an inbound delivery: that its webhook-id came, and how it ended.
# Everything else may be the person's (the payload, the error's sentence) or leads to them.
_ERASED_FROM_DELIVERY = (
    InboundDeliveryModel.payload,
    InboundDeliveryModel.customer_id,
    InboundDeliveryModel.interaction_id,
    InboundDeliveryModel.error,
    InboundDeliveryModel.customer_pk,
    InboundDeliveryModel.customer_sk,
)


def _strip_delivery(pk: str, sk: str) -> None:
    try:
        InboundDeliveryModel(pk, sk).update(
            actions=[attribute.remove() for attribute in _ERASED_FROM_DELIVERY],
            condition=InboundDeliveryModel.sk.exists(),
        )
    except UpdateError as error:
        if error_code(error) != CONDITION_FAILED:  # gone meanwhile (purged, or expired)
            raise


def forget_customer(customer_id: str) -> int:
    """Remove the customer from every item of the webhooks table that names them, found by a
    Query of GSI by_customer, page by page. An inbound delivery is kept, stripped to its
    webhook-id, type, status and times, so that the same webhook-id sent again is still
    answered as it was, with nothing done (a delivery still waiting to be processed then fails:
    its payload is gone); order, ticket and refund guards and outbound deliveries are deleted.
    Idempotent: what is done is not found again."""
    forgotten = 0
    with WebhookCustomerItemModel.batch_write() as batch:
        for item in WebhookCustomerItemModel.by_customer.query(customer_id):
            if item.pk.startswith(SOURCE_PREFIX) and item.sk.startswith(DELIVERY_PREFIX):
                _strip_delivery(item.pk, item.sk)
            else:
                batch.delete(WebhookCustomerItemModel(item.pk, item.sk))
            forgotten += 1
    return forgotten
