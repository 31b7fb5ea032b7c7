"""Interaction repository: a customer's timeline, newest first, under the customer's key."""

from __future__ import annotations

from decimal import Decimal

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain import money
from chalicelib.domain.clock import Deadline, parse_rfc3339, to_rfc3339
from chalicelib.domain.interactions import Interaction, LineItem
from chalicelib.domain.storage import AlreadyExists, Gone, VersionConflict
from chalicelib.store.customer_items import check_profile_exists
from chalicelib.store.models import InteractionModel, LineItemAttribute
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import BATCH_WRITE_ITEMS, failed_conditions, transaction


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
        campaign_id=item.campaign_id,
        run_id=item.run_id,
        order_id=item.order_id,
        import_id=item.import_id,
        returned={k: int(v) for k, v in (item.returned.as_dict() if item.returned else {}).items()},
        version=int(item.version or 0),
        merged_from=item.merged_from,
    )


interaction_from_item = _to_domain


def interaction_item(interaction: Interaction) -> InteractionModel:
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
        campaign_id=interaction.campaign_id,
        run_id=interaction.run_id,
        order_id=interaction.order_id,
        import_id=interaction.import_id,
        merged_from=interaction.merged_from,
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
        """Write the interaction while its customer exists (else Gone) and no interaction of
        the customer has its id (else AlreadyExists); a return also records its quantities on
        the purchase, conditional on the purchase's version (else VersionConflict: the purchase
        changed, or went away, since it was read)."""
        item = interaction_item(interaction)
        try:
            with transaction(self._region) as t:
                check_profile_exists(t, interaction.customer_id)
                t.save(item, condition=InteractionModel.id.does_not_exist())
                if purchase_after_return is not None:
                    t.update(
                        interaction_item(purchase_after_return),
                        actions=[InteractionModel.returned.set(dict(purchase_after_return.returned))],
                    )
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise Gone(interaction.customer_id) from error
            if failed[1:2] == [True]:
                raise AlreadyExists(interaction.id) from error
            if purchase_after_return is not None and any(failed):
                raise VersionConflict(purchase_after_return.id) from error
            raise
        return _to_domain(item)

    def timeline(
        self, customer_id: str, type_: str | None, limit: int, start: Key | None
    ) -> tuple[list[Interaction], Key | None]:
        query, partition, key_of = (
            (InteractionModel.by_type.query, f"{customer_id}#{type_}", _type_key)
            if type_
            else (InteractionModel.query, customer_id, _key)
        )
        return query_page(
            query,
            partition,
            limit=limit,
            start=start,
            key_of=key_of,
            to_domain=_to_domain,
            scan_index_forward=False,
        )

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


_key = keys_of("customer_id", "id")
_type_key = keys_of("customer_id", "id", "customer_type")
