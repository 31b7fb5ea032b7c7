"""Interaction repository: a customer's timeline, newest first, under the customer's key."""

from __future__ import annotations

from decimal import Decimal

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain import money
from chalicelib.domain.clock import Deadline, parse_rfc3339, to_rfc3339
from chalicelib.domain.interactions import Interaction, LineItem
from chalicelib.store.models import (
    BATCH_WRITE_ITEMS,
    PROFILE_SK,
    CustomerModel,
    InteractionModel,
    LineItemAttribute,
    customer_pk,
    failed_conditions,
    transaction,
)
from chalicelib.store.pagination import Key, collect


class CustomerGone(Exception):
    pass


class PurchaseChanged(Exception):
    """The purchase a return names changed (or went away) since it was read."""


def _to_domain(item: InteractionModel) -> Interaction:
    return Interaction(
        id=item.id,
        customer_id=item.customer_id,
        type=item.type,
        channel=item.channel,
        occurred_at=parse_rfc3339(item.occurred_at),
        created_at=parse_rfc3339(item.created_at),
        note=item.note,
        currency=item.currency,
        items=tuple(
            LineItem(i.sku, i.name, int(i.quantity), Decimal(i.unit_price)) for i in item.items or ()
        ),
        purchase_id=item.purchase_id,
        severity=item.severity,
        subject=item.subject,
        direction=item.direction or "inbound",
        text=item.text,
        case_id=item.case_id,
        returned={k: int(v) for k, v in (item.returned.as_dict() if item.returned else {}).items()},
        version=int(item.version or 0),
    )


def _to_model(interaction: Interaction) -> InteractionModel:
    item = InteractionModel(
        customer_id=interaction.customer_id,
        id=interaction.id,
        customer_type=f"{interaction.customer_id}#{interaction.type}",
        type=interaction.type,
        channel=interaction.channel,
        occurred_at=to_rfc3339(interaction.occurred_at),
        created_at=to_rfc3339(interaction.created_at),
        note=interaction.note,
        purchase_id=interaction.purchase_id,
        severity=interaction.severity,
        subject=interaction.subject,
        direction=interaction.direction,
        text=interaction.text,
        case_id=interaction.case_id,
    )
    if interaction.currency:
        item.currency = interaction.currency
        item.items = [
            LineItemAttribute(
                sku=i.sku,
                name=i.name,
                quantity=i.quantity,
                unit_price=money.format_money(i.unit_price, interaction.currency),
            )
            for i in interaction.items
        ]
        item.amount = money.format_money(interaction.amount, interaction.currency)
    if interaction.type == "purchase":
        item.returned = dict(interaction.returned)
    if interaction.version:
        item.version = interaction.version
    return item


class InteractionRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def get(self, customer_id: str, interaction_id: str, *, consistent: bool = False) -> Interaction | None:
        try:
            return _to_domain(InteractionModel.get(customer_id, interaction_id, consistent_read=consistent))
        except DoesNotExist:
            return None

    def add(self, interaction: Interaction, purchase_after_return: Interaction | None = None) -> Interaction:
        """Write the interaction while its customer exists; a return also records its
        quantities on the purchase, conditional on the purchase's version."""
        item = _to_model(interaction)
        try:
            with transaction(self._region) as t:
                t.condition_check(
                    CustomerModel,
                    customer_pk(interaction.customer_id),
                    PROFILE_SK,
                    condition=CustomerModel.pk.exists(),
                )
                t.save(item, condition=InteractionModel.id.does_not_exist())
                if purchase_after_return is not None:
                    t.update(
                        _to_model(purchase_after_return),
                        actions=[InteractionModel.returned.set(dict(purchase_after_return.returned))],
                    )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise CustomerGone(interaction.customer_id) from error
            if purchase_after_return is not None and any(failed):
                raise PurchaseChanged(purchase_after_return.id) from error
            raise
        return _to_domain(item)

    def timeline(
        self, customer_id: str, type_: str | None, limit: int, start: Key | None
    ) -> tuple[list[Interaction], Key | None]:
        if type_:
            rows = InteractionModel.by_type.query(
                f"{customer_id}#{type_}", scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
            )
            key_of = _type_key
        else:
            rows = InteractionModel.query(
                customer_id, scan_index_forward=False, limit=limit + 1, last_evaluated_key=start
            )
            key_of = _key
        items, next_key = collect(rows, limit, key_of)
        return [_to_domain(i) for i in items], next_key

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int:
        """Remove a customer's whole timeline, a page at a time (used after the profile is gone).
        With a `deadline`, OutOfTime stops it after a batch: calling again goes on from there."""
        removed = 0
        with InteractionModel.batch_write() as batch:
            for item in InteractionModel.query(customer_id, attributes_to_get=["customer_id", "id"]):
                batch.delete(item)
                removed += 1
                if deadline is not None and removed % BATCH_WRITE_ITEMS == 0:
                    deadline.check()  # what is pending is still written when the block is left
        return removed


def _key(item: InteractionModel) -> Key:
    return {"customer_id": {"S": item.customer_id}, "id": {"S": item.id}}


def _type_key(item: InteractionModel) -> Key:
    return {**_key(item), "customer_type": {"S": item.customer_type}}
