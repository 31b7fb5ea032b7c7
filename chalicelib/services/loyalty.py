"""Loyalty use cases: apply interaction changes to aggregates and per-SKU habits exactly once
in effect, read a customer's loyalty and habits as of now, and refresh tiers that decayed."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty.aggregates import Aggregates, RemainingMismatch
from chalicelib.domain.loyalty.aggregates import apply as apply_contributions
from chalicelib.domain.loyalty.config import TIERS, LoyaltyConfig
from chalicelib.domain.loyalty.contributions import Contribution, parts_of
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.loyalty.scoring import Score, score, tier_changes_at
from chalicelib.errors import FieldError, NotFound, ValidationFailed
from chalicelib.services.loyalty_writes import (
    GuardWrite,
    guard_write,
    keys_to_read,
    latest_per_interaction,
    touched,
    transactions,
)
from chalicelib.services.ports import Loyalty
from chalicelib.services.versions import retry_lost_races
from chalicelib.store.loyalty_items import (
    MAX_ITEMS_PER_WRITE,
    Guard,
    GuardKey,
    Loaded,
    StoredHabit,
    StoredLoyalty,
    legacy_part,
)
from chalicelib.store.pagination import CursorCodec, Page, page_of

MAX_ATTEMPTS = 3
# The loyalty response shows this many habits (next expected purchase first); the habits
# route pages through all of them.
HABITS_SHOWN = 100


@dataclass(frozen=True)
class InteractionChange:
    """One stream record of an interaction, as the loyalty model sees it."""

    record_id: str
    customer_id: str
    interaction_id: str
    version: int
    # What the interaction counts for: of the new image, or of the old one for a removal;
    # None when its type is not counted (complaints, visits...).
    contribution: Contribution | None
    removed: bool


@dataclass(frozen=True)
class LoyaltyView:
    customer_id: str
    aggregates: Aggregates
    score: Score
    updated_at: datetime | None
    # In `SkuHabit.order`: the first HABITS_SHOWN of them, or all (`complete_view`).
    habits: tuple[SkuHabit, ...] = ()


def _in_order(habits: Iterable[SkuHabit]) -> tuple[SkuHabit, ...]:
    return tuple(sorted(habits, key=lambda h: h.order))


class LoyaltyService:
    def __init__(
        self,
        repository: Loyalty,
        clock: Clock,
        config: LoyaltyConfig,
        base_currency: str,
        cursors: CursorCodec | None = None,
        was_deleted: Callable[[str], bool] = lambda customer_id: False,
    ) -> None:
        self._was_deleted = was_deleted
        self._repository = repository
        self._clock = clock
        self._config = config
        self._base_currency = base_currency
        self._cursors = cursors

    def apply(self, changes: list[InteractionChange]) -> dict[str, Exception]:
        """Apply a batch of changes; returns the failures by record id.

        Records are coalesced per customer: one read of the aggregates, guards and touched
        habits for the whole batch, and per customer as few transactions as 100 items a
        transaction allow (usually one: aggregates + the touched habits + a guard per
        interaction). A guard holds the version and contribution applied for its interaction
        (or part of one), so a redelivered, replayed or duplicated record changes nothing."""
        counted = [c for c in changes if c.contribution is not None]
        by_customer: dict[str, list[InteractionChange]] = {}
        for change in counted:
            by_customer.setdefault(change.customer_id, []).append(change)
        if not by_customer:
            return {}
        loaded = self._repository.load(by_customer, *keys_to_read(counted))
        failures: dict[str, Exception] = {}
        for customer_id, group in by_customer.items():
            error = self._apply_group(customer_id, group, loaded)
            if error is not None:
                for change in group:
                    failures[change.record_id] = error
        return failures

    def _apply_group(
        self, customer_id: str, group: list[InteractionChange], loaded: Loaded
    ) -> Exception | None:
        """None once a customer's records are applied, or need not be; else why they failed.
        Whatever fails fails this customer's records only, never the rest of the batch."""
        try:
            error = self._apply_with_retries(customer_id, group, loaded)
            # A deleted customer's records need no aggregates: their loyalty items are purged,
            # or being purged, so what was read of them may be partly gone and not add up.
            # (A record of a customer that never existed is a bad record.)
            return None if error is None or self._was_deleted(customer_id) else error
        except Exception as unexpected:  # e.g. DynamoDB unavailable for the tombstone's read
            return unexpected

    def _apply_with_retries(
        self, customer_id: str, group: list[InteractionChange], loaded: Loaded
    ) -> Exception | None:
        lost: list[Exception] = []

        def attempt() -> None:
            if lost:  # read this customer's items again
                guards = [k for k in loaded.guards if k[0] == customer_id]
                habits = [k for k in loaded.habits if k[0] == customer_id]
                loaded.update(self._repository.load([customer_id], guards, habits))
            self._apply_customer(customer_id, group, loaded)

        def remember(error: Exception) -> bool:
            lost.append(error)
            return True

        try:
            # A RemainingMismatch is a lost race too: the guards queried after the read
            # disagree with the aggregates read, so they changed in between.
            return retry_lost_races(
                attempt,
                lambda: lost[-1],
                attempts=MAX_ATTEMPTS,
                lost=(storage.VersionConflict, RemainingMismatch),
                retrying=remember,
            )
        except storage.ConditionFailed:
            # No profile: `_apply_group` tells a deleted customer from one that never was.
            return storage.NotFound(customer_id)
        except Exception as unexpected:  # TooLargeToStore, ServiceBusy, throttling, a bug
            return unexpected

    def _apply_customer(self, customer_id: str, group: list[InteractionChange], loaded: Loaded) -> None:
        before = loaded.loyalty[customer_id]
        if before is not None and before.aggregates.skus:
            self._move_kept_habits(customer_id, before, loaded)
        writes = self._writes(customer_id, group, loaded)
        # Later parts first: a guard written before purchases were split holds them until its
        # part 0 is written again, so theirs must be written no later than that.
        writes.sort(key=lambda write: -write[1].part)
        for chunk in transactions(customer_id, writes, loaded):
            self._write_chunk(customer_id, chunk, loaded)

    def _writes(self, customer_id: str, group: list[InteractionChange], loaded: Loaded) -> list[GuardWrite]:
        """The guards to write (what each read, what it becomes) and, read first when the
        records did not tell, every guard and habit they touch."""
        while True:
            writes: list[GuardWrite] = []
            guards_missing: set[GuardKey] = set()
            for change in latest_per_interaction(group).values():
                head_key = (customer_id, change.interaction_id, 0)
                if head_key not in loaded.guards:
                    guards_missing.add(head_key)
                    continue
                head = loaded.guards[head_key]
                assert change.contribution is not None
                new_parts = parts_of(change.contribution)
                count = max(len(new_parts), head.parts if head else 1)
                for part in range(count):
                    key = (customer_id, change.interaction_id, part)
                    if key not in loaded.guards:
                        guards_missing.add(key)
                        continue
                    read = loaded.guards[key]
                    if read is None and head is not None:
                        read = legacy_part(head, part)
                    write = guard_write(change, part, count, new_parts, read)
                    if write is not None:
                        writes.append(write)
            habits_missing = {
                (customer_id, sku)
                for read, new in writes
                for sku in touched(read, new)
                if (customer_id, sku) not in loaded.habits
            }
            if not guards_missing and not habits_missing:
                return writes
            loaded.update(self._repository.load([], guards_missing, habits_missing))

    def _write_chunk(self, customer_id: str, chunk: list[GuardWrite], loaded: Loaded) -> None:
        before = loaded.loyalty[customer_id]
        skus = sorted(set().union(*(touched(read, new) for read, new in chunk)))
        current = {sku: loaded.habits[(customer_id, sku)] for sku in skus}
        aggregates = replace(
            before.aggregates if before else Aggregates(),
            skus={sku: stored.habit for sku, stored in current.items() if stored is not None},
        )
        overrides = {(new.interaction_id, new.part): new for _, new in chunk}
        aggregates = apply_contributions(
            aggregates,
            [new.contribution for _, new in chunk if new.contribution],
            [read.contribution for read, _ in chunk if read and read.contribution],
            lambda: self._purchases_after(customer_id, overrides),
        )
        habits = [
            (current[sku], aggregates.skus.get(sku))
            for sku in skus
            if (current[sku].habit if current[sku] else None) != aggregates.skus.get(sku)
        ]
        aggregates = replace(aggregates, skus={})
        now = self._clock.now()
        scored = self._score(aggregates, now)
        review = tier_changes_at(aggregates, now, self._config, self._base_currency)
        self._repository.save(customer_id, before, aggregates, scored, review, now, chunk, habits)
        for _, new in chunk:
            loaded.guards[(customer_id, new.interaction_id, new.part)] = new
        for read_habit, habit in habits:
            sku = (habit or read_habit.habit).sku
            version = (read_habit.version if read_habit else 0) + 1
            loaded.habits[(customer_id, sku)] = StoredHabit(habit, version) if habit else None
        loaded.loyalty[customer_id] = StoredLoyalty(
            customer_id, aggregates, scored.tier, scored.score, now, (before.version if before else 0) + 1
        )

    def _move_kept_habits(self, customer_id: str, before: StoredLoyalty, loaded: Loaded) -> None:
        """Move the habits an aggregates item still holds (written before habits had items of
        their own) to items of their own, as many a transaction as fit."""
        kept = dict(before.aggregates.skus)
        while kept:
            moving = sorted(kept)[:MAX_ITEMS_PER_WRITE]
            left = {sku: habit for sku, habit in kept.items() if sku not in moving}
            aggregates = replace(before.aggregates, skus=left)
            now = self._clock.now()
            scored = self._score(aggregates, now)
            review = tier_changes_at(aggregates, now, self._config, self._base_currency)
            habits = [(None, kept[sku]) for sku in moving]
            self._repository.save(customer_id, before, aggregates, scored, review, now, [], habits)
            for sku in moving:
                loaded.habits[(customer_id, sku)] = StoredHabit(kept[sku], 1)
            before = StoredLoyalty(
                customer_id, aggregates, scored.tier, scored.score, now, before.version + 1
            )
            loaded.loyalty[customer_id] = before
            kept = left

    def _purchases_after(
        self, customer_id: str, overrides: dict[tuple[str, int], Guard]
    ) -> Iterable[Contribution]:
        purchases = {p.key: p for p in self._repository.applied_purchases(customer_id)}
        for key, guard in overrides.items():
            contribution = guard.contribution
            if contribution is not None and contribution.kind == "purchase" and not guard.removed:
                purchases[key] = contribution
            else:
                purchases.pop(key, None)
        return purchases.values()

    def _score(self, aggregates: Aggregates, now: datetime) -> Score:
        return score(aggregates, now, self._config, self._base_currency)

    def customer_with_loyalty(self, customer_id: str) -> tuple[Customer, LoyaltyView]:
        """A customer and their loyalty summary as of now, read together (one request)."""
        customer, stored = self._repository.get_with_profile(customer_id)
        if customer is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        return customer, self.view_of(customer_id, stored)

    def detail(self, customer_id: str) -> LoyaltyView:
        """A customer's loyalty as of now with their first HABITS_SHOWN habits (404 for an
        unknown customer): one BatchGetItem and one Query of the by_habit_due index."""
        _, stored = self.customer_with_loyalty(customer_id)
        habits = self._repository.first_habits(customer_id, HABITS_SHOWN)
        if stored is not None and stored.aggregates.skus:
            habits = list(stored.aggregates.skus.values()) + habits  # items win: they are newer
        return replace(
            self.view_of(customer_id, stored),
            habits=_in_order({h.sku: h for h in habits}.values())[:HABITS_SHOWN],
        )

    def complete_view(self, customer_id: str) -> LoyaltyView:
        """A customer's loyalty with every habit (the export), read page by page."""
        stored = self._repository.with_all_habits(customer_id)
        view = self.view_of(customer_id, stored)
        return replace(view, habits=_in_order(stored.aggregates.skus.values()) if stored else ())

    def habits(self, customer_id: str, limit: int, cursor: str | None) -> Page[SkuHabit]:
        """A customer's habits in SKU order, a page at a time (404 for an unknown customer)."""
        _, stored = self.customer_with_loyalty(customer_id)
        kept = stored.aggregates.skus if stored else {}
        return page_of(
            self._cursors,
            f"habits:{customer_id}",
            cursor,
            lambda start: self._repository.habits_page(customer_id, limit, start, kept),
        )

    def view_of(self, customer_id: str, stored: StoredLoyalty | None) -> LoyaltyView:
        """Loyalty as of now: recency decays with time, without any write."""
        aggregates = stored.aggregates if stored else Aggregates()
        return LoyaltyView(
            customer_id,
            aggregates,
            self._score(aggregates, self._clock.now()),
            stored.updated_at if stored else None,
        )

    def refresh_due_tiers(self) -> int:
        """Store the tier of every customer whose tier recency has changed by now; touches
        only those customers (found through the by_tier_review index)."""
        now = self._clock.now()
        refreshed = 0
        for customer_id in list(self._repository.due_for_review(now)):
            refreshed += retry_lost_races(
                functools.partial(self._refresh, customer_id, now), lambda: False, attempts=MAX_ATTEMPTS
            )
        return refreshed

    def _refresh(self, customer_id: str, now: datetime) -> bool:
        stored = self._repository.get(customer_id)
        if stored is None:
            return False
        scored = self._score(stored.aggregates, now)
        review = tier_changes_at(stored.aggregates, now, self._config, self._base_currency)
        if not self._repository.refresh_tier(stored, scored, review, now):
            raise storage.VersionConflict(customer_id)
        return True

    def by_tier(self, tier: str, limit: int, cursor: str | None) -> Page[LoyaltyView]:
        if tier not in TIERS:
            raise ValidationFailed([FieldError("tier", f"must be one of {', '.join(TIERS)}")])
        scope = f"customers?tier={tier}"
        page = page_of(
            self._cursors, scope, cursor, lambda start: self._repository.by_tier(tier, limit, start)
        )
        return Page([self.view_of(i.customer_id, i) for i in page.items], page.next_cursor)
