"""Loyalty aggregates, one habit per SKU and the guards of applied interactions, as
store/loyalty.py keeps them: every write conditional on what was read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.clock import Deadline
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty.aggregates import Aggregates
from chalicelib.domain.loyalty.contributions import Contribution
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.loyalty.scoring import Score
from chalicelib.store.loyalty import Guard, GuardKey, HabitKey, Loaded, StoredHabit, StoredLoyalty
from tests.unit.fakes.base import Key, Rivals, page
from tests.unit.fakes.customers import FakeCustomers


class FakeLoyalty:
    def __init__(self, customers: FakeCustomers) -> None:
        self.aggregates: dict[str, StoredLoyalty] = {}
        self.review_at: dict[str, datetime] = {}
        self.guards: dict[GuardKey, Guard] = {}
        self.habits: dict[HabitKey, StoredHabit] = {}
        self.anonymous_habits: dict[tuple[str, str], dict] = {}
        self.customers = customers
        customers.loyalty = self
        self.rivals = Rivals()
        self.saves = 0

    def load(
        self, customer_ids: Iterable[str], guards: Iterable[GuardKey] = (), habits: Iterable[HabitKey] = ()
    ) -> Loaded:
        return Loaded(
            loyalty={cid: self.aggregates.get(cid) for cid in customer_ids},
            guards={key: self.guards.get(key) for key in guards},
            habits={key: self.habits.get(key) for key in habits},
        )

    def save(
        self,
        customer_id: str,
        before: StoredLoyalty | None,
        aggregates: Aggregates,
        scored: Score,
        review_at: datetime | None,
        now: datetime,
        guards: list[tuple[Guard | None, Guard]],
        habits: list[tuple[StoredHabit | None, SkuHabit | None]] = (),
    ) -> None:
        self.rivals.run()
        if self.customers.get(customer_id) is None:
            raise storage.Gone(customer_id)
        stored = self.aggregates.get(customer_id)
        if (stored.version if stored else None) != (before.version if before else None):
            raise storage.VersionConflict(customer_id)
        for read, new in guards:
            current = self.guards.get((customer_id, new.interaction_id, new.part))
            expected = read.applied_version if read is not None and read.stored else None
            if (current.applied_version if current else None) != expected:
                raise storage.VersionConflict(customer_id)
        for read_habit, habit in habits:
            sku = (habit or read_habit.habit).sku
            current = self.habits.get((customer_id, sku))
            if (current.version if current else None) != (read_habit.version if read_habit else None):
                raise storage.VersionConflict(customer_id)
        self.saves += 1
        self._store(customer_id, aggregates, scored, review_at, now, (before.version if before else 0) + 1)
        for _, new in guards:
            self.guards[(customer_id, new.interaction_id, new.part)] = new
        for read_habit, habit in habits:
            if habit is None:
                self.habits.pop((customer_id, read_habit.habit.sku), None)
            else:
                version = (read_habit.version if read_habit else 0) + 1
                self.habits[(customer_id, habit.sku)] = StoredHabit(habit, version)

    def _store(
        self,
        customer_id: str,
        aggregates: Aggregates,
        scored: Score,
        review_at: datetime | None,
        now: datetime,
        version: int,
    ) -> None:
        self.aggregates[customer_id] = StoredLoyalty(
            customer_id, aggregates, scored.tier, scored.score, now, version
        )
        if review_at is None:
            self.review_at.pop(customer_id, None)
        else:
            self.review_at[customer_id] = review_at

    def applied_purchases(self, customer_id: str) -> list[Contribution]:
        return [
            g.contribution
            for (cid, _, _), g in self.guards.items()
            if cid == customer_id
            and g.contribution is not None
            and g.contribution.kind == "purchase"
            and not g.removed
        ]

    def get(self, customer_id: str, *, consistent: bool = False) -> StoredLoyalty | None:
        return self.aggregates.get(customer_id)

    def get_with_profile(self, customer_id: str) -> tuple[Customer | None, StoredLoyalty | None]:
        return self.customers.get(customer_id), self.aggregates.get(customer_id)

    def _habits_of(self, customer_id: str) -> list[SkuHabit]:
        return [stored.habit for (cid, _), stored in sorted(self.habits.items()) if cid == customer_id]

    def first_habits(self, customer_id: str, limit: int) -> list[SkuHabit]:
        return sorted(self._habits_of(customer_id), key=lambda h: h.order)[:limit]

    def habits_due_by(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]:
        due = [h for h in self._habits_of(customer_id) if h.next_expected_at and h.next_expected_at <= moment]
        return sorted(due, key=lambda h: (h.next_expected_at, h.sku), reverse=True)[:limit]

    def habits_expected_after(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]:
        later = [
            h for h in self._habits_of(customer_id) if h.next_expected_at and h.next_expected_at > moment
        ]
        return sorted(later, key=lambda h: (h.next_expected_at, h.sku))[:limit]

    def latest_single_habits(self, customer_id: str, limit: int) -> list[SkuHabit]:
        once = [h for h in self._habits_of(customer_id) if h.next_expected_at is None]
        return sorted(once, key=lambda h: (h.last_purchase_at, h.sku), reverse=True)[:limit]

    def habits_page(
        self, customer_id: str, limit: int, start: Key | None, kept: Mapping[str, SkuHabit]
    ) -> tuple[list[SkuHabit], Key | None]:
        merged = {h.sku: h for h in kept.values()} | {h.sku: h for h in self._habits_of(customer_id)}
        return page([merged[sku] for sku in sorted(merged)], limit, start, lambda h: h.sku)

    def with_all_habits(self, customer_id: str) -> StoredLoyalty | None:
        stored = self.aggregates.get(customer_id)
        if stored is None:
            return None
        habits = dict(stored.aggregates.skus) | {h.sku: h for h in self._habits_of(customer_id)}
        return replace(stored, aggregates=replace(stored.aggregates, skus=habits))

    def due_for_review(self, now: datetime) -> Iterator[str]:
        yield from sorted(cid for cid, at in self.review_at.items() if at <= now)

    def refresh_tier(
        self, before: StoredLoyalty, scored: Score, review_at: datetime | None, now: datetime
    ) -> bool:
        self.rivals.run()
        stored = self.aggregates.get(before.customer_id)
        if stored is None or stored.version != before.version:
            return False
        self._store(before.customer_id, before.aggregates, scored, review_at, now, before.version + 1)
        return True

    def by_tier(self, tier: str, limit: int, start: Key | None) -> tuple[list[StoredLoyalty], Key | None]:
        rows = sorted(
            (s for s in self.aggregates.values() if s.tier == tier),
            key=lambda s: (s.score, s.customer_id),
            reverse=True,
        )
        return page(rows, limit, start, lambda s: s.customer_id)

    # -- erasure ------------------------------------------------------------------------------

    def copy_habits_anonymously(
        self,
        customer_id: str,
        anonymous_id: str,
        scrub: Callable[[dict], dict],
        previously: set[str] = frozenset(),
    ) -> set[str]:
        copied = set()
        for habit in self._habits_of(customer_id):
            self.anonymous_habits[(anonymous_id, habit.sku)] = scrub(habit.to_dict())
            copied.add(habit.sku)
        self.forget_anonymous_habits(anonymous_id, previously - copied)
        return copied

    def forget_anonymous_habits(self, anonymous_id: str, skus: Iterable[str]) -> None:
        for sku in skus:
            self.anonymous_habits.pop((anonymous_id, sku), None)

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int:
        removed = 0
        for items in (self.guards, self.habits, self.aggregates, self.review_at):
            keys = [k for k in items if (k[0] if isinstance(k, tuple) else k) == customer_id]
            for key in keys:
                del items[key]
            removed += len(keys) if items is not self.review_at else 0
        return removed
