"""Loyalty use cases: apply interaction changes to aggregates and per-SKU habits exactly once
in effect, read a customer's loyalty and habits as of now, and refresh tiers that decayed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.domain import loyalty
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty import Aggregates, Contribution, LoyaltyConfig, Score, SkuHabit, parts_of
from chalicelib.errors import FieldError, NotFound, ValidationFailed
from chalicelib.services.ports import Loyalty
from chalicelib.store.loyalty import (
    MAX_BYTES_PER_WRITE,
    MAX_ITEMS_PER_WRITE,
    CustomerMissing,
    Guard,
    GuardKey,
    HabitKey,
    Loaded,
    LoyaltyChanged,
    StoredHabit,
    StoredLoyalty,
    guard_bytes,
    habit_bytes,
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


class UnknownCustomer(Exception):
    pass


class ConcurrentChange(Exception):
    pass


@dataclass(frozen=True)
class LoyaltyView:
    customer_id: str
    aggregates: Aggregates
    score: Score
    updated_at: datetime | None
    # In `SkuHabit.order`: the first HABITS_SHOWN of them, or all (`complete_view`).
    habits: tuple[SkuHabit, ...] = ()


def _latest_per_interaction(changes: list[InteractionChange]) -> dict[str, InteractionChange]:
    latest: dict[str, InteractionChange] = {}
    for change in changes:
        seen = latest.get(change.interaction_id)
        if seen is None or (change.version, change.removed) >= (seen.version, seen.removed):
            latest[change.interaction_id] = change
    return latest


def _keys_to_read(changes: Iterable[InteractionChange]) -> tuple[list[GuardKey], list[HabitKey]]:
    """The guards and habits a batch needs, as far as its records tell: the guard of each part
    and the habit of each SKU of what the records carry."""
    guards: list[GuardKey] = []
    habits: list[HabitKey] = []
    for change in changes:
        assert change.contribution is not None
        parts = len(parts_of(change.contribution))
        guards += [(change.customer_id, change.interaction_id, part) for part in range(parts)]
        habits += [(change.customer_id, sku) for sku in sorted(change.contribution.skus)]
    return guards, habits


def _touched(read: Guard | None, new: Guard) -> set[str]:
    return loyalty.touched_skus(
        [new.contribution] if new.contribution else [],
        [read.contribution] if read and read.contribution else [],
    )


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
        loaded = self._repository.load(by_customer, *_keys_to_read(counted))
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
        error: Exception | None = None
        for attempt in range(MAX_ATTEMPTS):
            try:
                if attempt:
                    loaded.update(
                        self._repository.load(
                            [customer_id],
                            [k for k in loaded.guards if k[0] == customer_id],
                            [k for k in loaded.habits if k[0] == customer_id],
                        )
                    )
                self._apply_customer(customer_id, group, loaded)
                return None
            except CustomerMissing:
                return UnknownCustomer(customer_id)
            except LoyaltyChanged:
                error = ConcurrentChange(customer_id)
            except loyalty.RemainingMismatch as mismatch:
                # The guards queried after the read disagree with the aggregates read: they
                # changed in between. Read again, as for a lost race.
                error = mismatch
            except Exception as unexpected:  # TooLargeToStore, ServiceBusy, throttling, a bug
                return unexpected
        return error

    def _apply_customer(self, customer_id: str, group: list[InteractionChange], loaded: Loaded) -> None:
        before = loaded.loyalty[customer_id]
        if before is not None and before.aggregates.skus:
            self._move_kept_habits(customer_id, before, loaded)
        writes = self._writes(customer_id, group, loaded)
        # Later parts first: a guard written before purchases were split holds them until its
        # part 0 is written again, so theirs must be written no later than that.
        writes.sort(key=lambda write: -write[1].part)
        for chunk in self._transactions(customer_id, writes, loaded):
            self._write_chunk(customer_id, chunk, loaded)

    def _writes(
        self, customer_id: str, group: list[InteractionChange], loaded: Loaded
    ) -> list[tuple[Guard | None, Guard]]:
        """The guards to write (what each read, what it becomes) and, read first when the
        records did not tell, every guard and habit they touch."""
        while True:
            writes: list[tuple[Guard | None, Guard]] = []
            guards_missing: set[GuardKey] = set()
            for change in _latest_per_interaction(group).values():
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
                    write = self._guard_write(change, part, count, new_parts, read)
                    if write is not None:
                        writes.append(write)
            habits_missing = {
                (customer_id, sku)
                for read, new in writes
                for sku in _touched(read, new)
                if (customer_id, sku) not in loaded.habits
            }
            if not guards_missing and not habits_missing:
                return writes
            loaded.update(self._repository.load([], guards_missing, habits_missing))

    @staticmethod
    def _guard_write(
        change: InteractionChange,
        part: int,
        count: int,
        new_parts: tuple[Contribution, ...],
        read: Guard | None,
    ) -> tuple[Guard | None, Guard] | None:
        if read is not None and (
            read.removed or (not change.removed and read.applied_version >= change.version)
        ):
            return None
        contribution = None if change.removed or part >= len(new_parts) else new_parts[part]
        if read is None and contribution is None and not change.removed:
            return None  # a part this version does not have, and no earlier one applied
        new = Guard(
            change.interaction_id,
            change.version,
            contribution,
            change.removed,
            part=part,
            parts=count if part == 0 else 1,
        )
        unchanged = read is not None and read.contribution == new.contribution and not new.removed
        if unchanged and (part or (read.stored and read.parts >= count)):
            return None
        return read, new

    def _transactions(
        self, customer_id: str, writes: list[tuple[Guard | None, Guard]], loaded: Loaded
    ) -> list[list[tuple[Guard | None, Guard]]]:
        """The guard writes in groups that fit one transaction each, with their habits: at most
        MAX_ITEMS_PER_WRITE guards and habits and MAX_BYTES_PER_WRITE bytes."""
        chunks: list[list[tuple[Guard | None, Guard]]] = [[]]
        skus: set[str] = set()
        items = size = 0

        def cost(read: Guard | None, new: Guard) -> tuple[set[str], int, int]:
            fresh = _touched(read, new) - skus
            habits = sum(self._habit_bytes(customer_id, sku, read, new, loaded) for sku in fresh)
            return fresh, 1 + len(fresh), guard_bytes(customer_id, new) + habits

        for read, new in writes:
            fresh, more_items, more_bytes = cost(read, new)
            full = items + more_items > MAX_ITEMS_PER_WRITE or size + more_bytes > MAX_BYTES_PER_WRITE
            if chunks[-1] and full:
                chunks.append([])
                skus, items, size = set(), 0, 0
                fresh, more_items, more_bytes = cost(read, new)
            chunks[-1].append((read, new))
            skus |= fresh
            items += more_items
            size += more_bytes
        return [chunk for chunk in chunks if chunk]

    @staticmethod
    def _habit_bytes(customer_id: str, sku: str, read: Guard | None, new: Guard, loaded: Loaded) -> int:
        # The habit is named after one of these: the stored one or a line of a purchase.
        stored = loaded.habits.get((customer_id, sku))
        names = [stored.habit.name] if stored else []
        for guard in (read, new):
            if guard is not None and guard.contribution is not None:
                names += [line.name for line in guard.contribution.lines if line.sku == sku]
        return habit_bytes(customer_id, sku, max(names, key=lambda n: len(n.encode()), default=""))

    def _write_chunk(self, customer_id: str, chunk: list[tuple[Guard | None, Guard]], loaded: Loaded) -> None:
        before = loaded.loyalty[customer_id]
        touched = sorted(set().union(*(_touched(read, new) for read, new in chunk)))
        current = {sku: loaded.habits[(customer_id, sku)] for sku in touched}
        aggregates = replace(
            before.aggregates if before else Aggregates(),
            skus={sku: stored.habit for sku, stored in current.items() if stored is not None},
        )
        overrides = {(new.interaction_id, new.part): new for _, new in chunk}
        aggregates = loyalty.apply(
            aggregates,
            [new.contribution for _, new in chunk if new.contribution],
            [read.contribution for read, _ in chunk if read and read.contribution],
            lambda: self._purchases_after(customer_id, overrides),
        )
        habits = [
            (current[sku], aggregates.skus.get(sku))
            for sku in touched
            if (current[sku].habit if current[sku] else None) != aggregates.skus.get(sku)
        ]
        aggregates = replace(aggregates, skus={})
        now = self._clock.now()
        scored = self._score(aggregates, now)
        review = loyalty.tier_changes_at(aggregates, now, self._config, self._base_currency)
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
            review = loyalty.tier_changes_at(aggregates, now, self._config, self._base_currency)
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
        return loyalty.score(aggregates, now, self._config, self._base_currency)

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
        assert self._cursors is not None
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
            for _ in range(MAX_ATTEMPTS):
                stored = self._repository.get(customer_id)
                if stored is None:
                    break
                scored = self._score(stored.aggregates, now)
                review = loyalty.tier_changes_at(stored.aggregates, now, self._config, self._base_currency)
                if self._repository.refresh_tier(stored, scored, review, now):
                    refreshed += 1
                    break
        return refreshed

    def by_tier(self, tier: str, limit: int, cursor: str | None) -> Page[LoyaltyView]:
        if tier not in loyalty.TIERS:
            raise ValidationFailed([FieldError("tier", f"must be one of {', '.join(loyalty.TIERS)}")])
        assert self._cursors is not None
        scope = f"customers?tier={tier}"
        page = page_of(
            self._cursors, scope, cursor, lambda start: self._repository.by_tier(tier, limit, start)
        )
        return Page([self.view_of(i.customer_id, i) for i in page.items], page.next_cursor)
