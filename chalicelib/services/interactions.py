"""Interaction use cases: record what happened, read the timeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import attempts, ids
from chalicelib.domain.clock import Clock
from chalicelib.domain.interactions import Interaction, LineItem, excess_returns, quantities, unreturnable
from chalicelib.domain.storage import AlreadyExists, Gone
from chalicelib.errors import Conflict, FieldError, NotFound, Unprocessable
from chalicelib.services.ports import Interactions, ProfileReader
from chalicelib.services.versions import retry_lost_races
from chalicelib.store.pagination import CursorCodec, Page, page_of

# Ids merged into one customer whose timelines a return looks in for its purchase.
MAX_MERGED_LOOKED_AT = 10


class InteractionService:
    def __init__(
        self,
        interactions: Interactions,
        customers: ProfileReader,
        cursors: CursorCodec,
        clock: Clock,
        new_id: Callable[[datetime], str] = lambda at: ids.new_id(ids.INTERACTION, at),
        merged_into: Callable[[str], list[str]] = lambda customer_id: [],
    ) -> None:
        self._merged_into = merged_into
        self._interactions = interactions
        self._customers = customers
        self._cursors = cursors
        self._clock = clock
        self._new_id = new_id

    def _require_customer(self, customer_id: str) -> None:
        if self._customers.get(customer_id) is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")

    def written_by_earlier_attempt(
        self, customer_id: str, occurred_at: datetime | None = None
    ) -> Interaction | None:
        """In the retry of a keyed request whose first attempt committed, the interaction that
        attempt wrote: the one with the id this attempt would give its interaction next."""
        if not attempts.repeating():
            return None
        upcoming = ids.next_id(ids.INTERACTION, occurred_at or self._clock.now())
        return self._interactions.get(customer_id, upcoming, consistent=True) if upcoming else None

    def record(
        self, customer_id: str, fields: dict, interaction_id: str | None = None, *, fresh: bool = False
    ) -> Interaction:
        """Add an interaction to a customer's timeline. A return must name a purchase of the
        same customer and may not return more of a SKU than that purchase still holds.

        The customer's existence is a condition of the write itself (no read first). With an
        `interaction_id` (one claimed for it beforehand), recording is idempotent: if the
        customer has an interaction of that id it is answered as it is, before any check (a
        return recorded before would now count against its own purchase), and the write is
        conditional on the id being free: storage.AlreadyExists if another writer took it
        meanwhile. `fresh`: the id is most likely unused (a bulk import's first run of a row),
        so it is not looked for before the write, only when the write finds it taken (a
        return is always looked for first)."""
        now = self._clock.now()
        occurred_at = fields.pop("occurred_at", None) or now
        fresh = fresh and bool(interaction_id) and fields.get("type") != "return"
        if fresh:
            written = None
        elif interaction_id:
            written = self._interactions.get(customer_id, interaction_id, consistent=True)
        else:
            written = self.written_by_earlier_attempt(customer_id, occurred_at)
        if written is not None:
            return written  # a return's checks would now count the return against its purchase
        items = tuple(LineItem(**item) for item in fields.pop("items", None) or ())
        interaction = Interaction(
            id=interaction_id or self._new_id(occurred_at),
            customer_id=customer_id,
            occurred_at=occurred_at,
            created_at=now,
            items=items,
            **fields,
        )

        def add_return() -> Interaction:
            purchase = self._purchase_for(interaction)
            returned = quantities(interaction.items)
            after = replace(
                purchase,
                returned={
                    sku: purchase.returned.get(sku, 0) + returned.get(sku, 0)
                    for sku in set(purchase.returned) | set(returned)
                },
            )
            return self._interactions.add(interaction, purchase_after_return=after)

        try:
            if interaction.type != "return":
                try:
                    return self._interactions.add(interaction)
                except AlreadyExists:
                    taken = (
                        self._interactions.get(customer_id, interaction.id, consistent=True)
                        if fresh
                        else None
                    )
                    if taken is None:
                        raise
                    return taken
            return retry_lost_races(
                add_return, Conflict("The purchase is being returned by other requests right now: retry.")
            )
        except Gone:
            raise NotFound(f"No customer has the id {customer_id!r}.") from None

    def _purchase_for(self, ret: Interaction) -> Interaction:
        # Strongly consistent: a purchase recorded a moment ago (an earlier row of an import, a
        # client's request just before) must be found, not answered 422.
        purchase = self._interactions.get(ret.customer_id, ret.purchase_id or "", consistent=True)
        if purchase is None:
            self._require_customer(ret.customer_id)
            purchase = self._purchase_being_merged(ret)
        if purchase is None or purchase.type != "purchase":
            raise Unprocessable(
                "A return must name a purchase of the same customer.",
                errors=[FieldError("purchase_id", "is not a purchase of this customer")],
            )
        if purchase.currency != ret.currency:
            raise Unprocessable(
                "A return is refunded in the currency of its purchase.",
                errors=[FieldError("currency", f"must be the purchase's currency, {purchase.currency}")],
            )
        problems = unreturnable(purchase, ret.items)
        if problems:
            raise Unprocessable(
                "A return may only hold SKUs of its purchase, at most at the price it charged.",
                errors=[FieldError(field, problem) for field, problem in problems],
            )
        excess = excess_returns(purchase, ret.items)
        if excess:
            raise Conflict(
                "The return holds more than the purchase has left to return.",
                errors=[
                    FieldError(
                        f"items.{i}.quantity",
                        f"exceeds what purchase {purchase.id} has left of {item.sku} by {excess[item.sku]}",
                    )
                    for i, item in enumerate(ret.items)
                    if item.sku in excess
                ],
            )
        return purchase

    def _purchase_being_merged(self, ret: Interaction) -> Interaction | None:
        """The purchase still under an id being merged into the customer (the merge job moves
        it soon): the return records its quantities there, conditional on its version, so a
        move in between fails the write and the retry finds the purchase moved. Read only
        when the purchase is not the customer's own: a Query of the ids merged into them."""
        for merged_id in self._merged_into(ret.customer_id)[:MAX_MERGED_LOOKED_AT]:
            purchase = self._interactions.get(merged_id, ret.purchase_id or "", consistent=True)
            if purchase is not None:
                return purchase
        return None

    def get(self, customer_id: str, interaction_id: str) -> Interaction:
        self._require_customer(customer_id)
        interaction = self._interactions.get(customer_id, interaction_id)
        if interaction is None:
            raise NotFound(f"Customer {customer_id!r} has no interaction {interaction_id!r}.")
        return interaction

    def timeline(
        self, customer_id: str, type_: str | None, limit: int, cursor: str | None
    ) -> Page[Interaction]:
        self._require_customer(customer_id)
        scope = f"interactions:{customer_id}:{type_ or '*'}"
        return page_of(
            self._cursors,
            scope,
            cursor,
            lambda start: self._interactions.timeline(customer_id, type_, limit, start),
        )
