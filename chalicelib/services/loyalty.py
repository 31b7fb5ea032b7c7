"""Loyalty use cases: apply interaction changes to aggregates exactly once in effect, read a
customer's loyalty as of now, and refresh tiers that decayed."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain import loyalty
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty import Aggregates, Contribution, LoyaltyConfig, Score
from chalicelib.errors import FieldError, NotFound, ValidationFailed
from chalicelib.store.loyalty import (
    MAX_GUARDS_PER_WRITE,
    CustomerMissing,
    Guard,
    LoyaltyChanged,
    LoyaltyRepository,
    StoredLoyalty,
)
from chalicelib.store.pagination import CursorCodec, Page, page_of

MAX_ATTEMPTS = 3


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


def _latest_per_interaction(changes: list[InteractionChange]) -> dict[str, InteractionChange]:
    latest: dict[str, InteractionChange] = {}
    for change in changes:
        seen = latest.get(change.interaction_id)
        if seen is None or (change.version, change.removed) >= (seen.version, seen.removed):
            latest[change.interaction_id] = change
    return latest


class LoyaltyService:
    def __init__(
        self,
        repository: LoyaltyRepository,
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

        Records are coalesced per customer: one read of the aggregates and their guards for
        the whole batch, and one transactional write per customer (aggregates + a guard per
        interaction). A guard holds the version and contribution applied for its interaction,
        so a redelivered, replayed or duplicated record changes nothing."""
        counted = [c for c in changes if c.contribution is not None]
        by_customer: dict[str, list[InteractionChange]] = {}
        for change in counted:
            by_customer.setdefault(change.customer_id, []).append(change)
        if not by_customer:
            return {}
        stored, guards = self._repository.load(
            by_customer, [(c.customer_id, c.interaction_id) for c in counted]
        )
        failures: dict[str, Exception] = {}
        for customer_id, group in by_customer.items():
            for attempt in range(MAX_ATTEMPTS):
                try:
                    self._apply_customer(customer_id, group, stored.get(customer_id), guards)
                    break
                except CustomerMissing:
                    # A deleted customer's records need no aggregates (their data is purged);
                    # a record of a customer that never existed is a bad record.
                    if not self._was_deleted(customer_id):
                        for change in group:
                            failures[change.record_id] = UnknownCustomer(customer_id)
                    break
                except LoyaltyChanged:
                    if attempt + 1 == MAX_ATTEMPTS:
                        for change in group:
                            failures[change.record_id] = ConcurrentChange(customer_id)
                        break
                    fresh, fresh_guards = self._repository.load(
                        [customer_id], [(customer_id, c.interaction_id) for c in group]
                    )
                    stored.pop(customer_id, None)
                    stored.update(fresh)
                    for change in group:
                        guards.pop((customer_id, change.interaction_id), None)
                    guards.update(fresh_guards)
        return failures

    def _apply_customer(
        self,
        customer_id: str,
        group: list[InteractionChange],
        before: StoredLoyalty | None,
        guards: dict[tuple[str, str], Guard],
    ) -> None:
        writes: list[tuple[Guard | None, Guard]] = []
        for change in _latest_per_interaction(group).values():
            read = guards.get((customer_id, change.interaction_id))
            if read is not None and (
                read.removed or (not change.removed and read.applied_version >= change.version)
            ):
                continue
            new = Guard(
                change.interaction_id,
                change.version,
                None if change.removed else change.contribution,
                change.removed,
            )
            if read is not None and read.contribution == new.contribution and not new.removed:
                continue
            writes.append((read, new))
        aggregates = before.aggregates if before else Aggregates()
        for start in range(0, len(writes), MAX_GUARDS_PER_WRITE):
            chunk = writes[start : start + MAX_GUARDS_PER_WRITE]
            added = [new.contribution for _, new in chunk if new.contribution]
            removed = [read.contribution for read, _ in chunk if read and read.contribution]
            overrides = {new.interaction_id: new for _, new in chunk}
            aggregates = loyalty.apply(
                aggregates,
                added,
                removed,
                lambda overrides=overrides: self._purchases_after(customer_id, overrides),
            )
            now = self._clock.now()
            scored = self._score(aggregates, now)
            review = loyalty.tier_changes_at(aggregates, now, self._config, self._base_currency)
            self._repository.save(customer_id, before, aggregates, scored, review, now, chunk)
            for _, new in chunk:
                guards[(customer_id, new.interaction_id)] = new
            before = StoredLoyalty(
                customer_id, aggregates, scored.tier, scored.score, now, (before.version if before else 0) + 1
            )

    def _purchases_after(self, customer_id: str, overrides: dict[str, Guard]) -> Iterable[Contribution]:
        purchases = {p.interaction_id: p for p in self._repository.applied_purchases(customer_id)}
        for interaction_id, guard in overrides.items():
            contribution = guard.contribution
            if contribution is not None and contribution.kind == "purchase" and not guard.removed:
                purchases[interaction_id] = contribution
            else:
                purchases.pop(interaction_id, None)
        return purchases.values()

    def _score(self, aggregates: Aggregates, now: datetime) -> Score:
        return loyalty.score(aggregates, now, self._config, self._base_currency)

    def customer_with_loyalty(self, customer_id: str) -> tuple[Customer, LoyaltyView]:
        """A customer and their loyalty as of now, read together (one request)."""
        customer, stored = self._repository.get_with_profile(customer_id)
        if customer is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        return customer, self.view_of(customer_id, stored)

    def view(self, customer_id: str) -> LoyaltyView:
        """A customer's loyalty as of now: recency decays with time, without any write."""
        stored = self._repository.get(customer_id)
        return self.view_of(customer_id, stored)

    def view_of(self, customer_id: str, stored: StoredLoyalty | None) -> LoyaltyView:
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
