"""Recommendation use cases: count co-purchases from the interactions stream exactly once in
effect, and answer related products and a customer's recommendations from those counts, their
habits and the catalogue (Queries and BatchGetItems only, whatever the number of customers)."""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from chalicelib.domain import storage
from chalicelib.domain.clock import Clock, Deadline, OutOfTime
from chalicelib.domain.loyalty.habits import SkuHabit
from chalicelib.domain.products import Product
from chalicelib.domain.recommendations import (
    BOUGHT_TOGETHER,
    PARTNERS_PER_WRITE,
    POPULAR,
    REPURCHASE_DUE,
    Recommendation,
    Related,
    confidence,
    new_pairs,
    popular,
    recommend,
)
from chalicelib.errors import NotFound, ServiceBusy
from chalicelib.services.ports import CoPurchases, Interactions, Loyalty, Products
from chalicelib.store.pagination import CursorCodec, Page, page_of

# A customer's recommendations are built from a bounded number of reads: their first habits
# (due soonest first), the best pairs of their most recently bought SKUs, their returns, the
# catalogue entries of all those SKUs; or, with no purchase, the most-bought SKUs. The ranked
# list is then paged by offset (a signed cursor), at most RANKED long.
SOURCES = 10
PAIRS_PER_SOURCE = 20
HABITS_READ = 100
RETURNS_PAGE = 100
RETURNS_PAGES = 10
RANKED = 100
BUSY_ATTEMPTS = 4
BUSY_BACKOFF_S = 0.2


@dataclass(frozen=True)
class PurchaseSeen:
    """The SKUs of one purchase as a stream record carries it."""

    record_id: str
    customer_id: str
    skus: frozenset[str]


@dataclass(frozen=True)
class RelatedProduct:
    product: Product
    co_purchases: int
    confidence: float


@dataclass(frozen=True)
class Recommended:
    product: Product
    recommendation: Recommendation


class RecommendationService:
    def __init__(
        self,
        co_purchases: CoPurchases,
        loyalty: Loyalty,
        products: Products,
        interactions: Interactions,
        clock: Clock,
        cursors: CursorCodec | None = None,
        min_support: int = 2,
        window_days: int = 7,
        reuse_popular: bool = False,
    ) -> None:
        """`reuse_popular`: the most-bought list, the same for every customer, is read once in
        the instance's life (one that picks for many customers at one moment: a campaign
        delivery) instead of for each customer who needs it."""
        self._counts = co_purchases
        self._loyalty = loyalty
        self._products = products
        self._interactions = interactions
        self._clock = clock
        self._cursors = cursors
        self._min_support = min_support
        self._window_days = window_days
        self._reuse_popular = reuse_popular
        self._popular_read: list[Recommended] | None = None

    def apply(
        self, purchases: Iterable[PurchaseSeen], deadline: Deadline | None = None
    ) -> dict[str, Exception]:
        """Count the first purchase of each SKU by each customer: the SKU's buyers, and a pair
        both ways with every SKU the customer bought before; returns the failures by record id.
        A customer without a profile (deleted) is skipped: the counts are anonymous anyway.
        Past the `deadline` (the invocation's time), the records not yet counted fail: they
        come again, and the guards keep what was counted."""
        failures: dict[str, Exception] = {}
        bought: dict[str, set[str]] = {}
        gone: set[str] = set()
        purchases = list(purchases)
        for n, purchase in enumerate(purchases):
            customer_id = purchase.customer_id
            if customer_id in gone:
                continue
            try:
                if customer_id not in bought:
                    bought[customer_id] = self._counts.bought(customer_id)
                have = bought[customer_id]
                for sku in sorted(purchase.skus - have):
                    self._count_first(customer_id, sku, have, deadline)
                    have.add(sku)
            except storage.ConditionFailed:
                gone.add(customer_id)
            except OutOfTime as error:
                failures.update({p.record_id: error for p in purchases[n:] if p.customer_id not in gone})
                break
            except Exception as error:  # this record fails alone, and is delivered again
                bought.pop(customer_id, None)
                failures[purchase.record_id] = error
        return failures

    def _count_first(self, customer_id: str, sku: str, bought: set[str], deadline: Deadline | None) -> None:
        """In as many transactions as the pairs need, each with a guard of its own, the SKU's
        buyer count last: a replay after any of them counts only what is left."""
        partners = new_pairs(bought, sku)
        if len(partners) > PARTNERS_PER_WRITE:
            # The SKUs bought before only grow, so an earlier attempt chunked them too.
            done = self._counts.paired(customer_id, sku)
            covered = set().union(*done.values())
            left = [p for p in partners if p not in covered]
            chunk = max(done, default=-1) + 1
            while len(left) > PARTNERS_PER_WRITE:
                self._once(
                    lambda c=chunk, p=left[:PARTNERS_PER_WRITE]: self._counts.count_pairs(
                        customer_id, sku, c, p
                    ),
                    deadline,
                )
                left, chunk = left[PARTNERS_PER_WRITE:], chunk + 1
            partners = left
        self._once(lambda: self._counts.count_buyer(customer_id, sku, partners), deadline)

    def withdraw(self, customer_id: str, deadline: Deadline | None = None) -> int:
        """Take back everything a customer's guards counted, guard by guard (a merge does this
        for the merged customer, whose purchases the survivor's consumer counts again as
        theirs): each guard goes in the transaction that takes its counts back, so a rerun, or
        two runs at once, take nothing back twice. Returns the SKUs withdrawn.

        First the PAIRED# chunks: a SKU whose BOUGHT# was never written (its count was cut
        short) has its chunks' pairs taken back; a counted SKU's chunks go alone. Then each
        BOUGHT# SKU, smallest first: one buyer, and a pair with every SKU still bought after
        it, so each pair of the customer's SKUs is taken back once. The guards no longer
        change (the customer has no profile: the consumer counts nothing more for them), so
        what a SKU pairs with when its turn comes is the same for every run."""
        bought, paired = self._counts.guards_of(customer_id)
        for sku, chunks in sorted(paired.items()):
            for chunk, partners in sorted(chunks.items()):
                self._withdrawn(
                    lambda s=sku, c=chunk, p=partners: self._counts.withdraw_paired(
                        customer_id, s, c, () if s in bought else p
                    ),
                    deadline,
                )
        for sku in sorted(bought):
            partners = sorted(other for other in bought if other > sku)
            chunks = [
                partners[n : n + PARTNERS_PER_WRITE] for n in range(0, len(partners), PARTNERS_PER_WRITE)
            ]
            last = chunks.pop() if chunks else []
            done = self._counts.withdrawn_chunks(customer_id, sku) if chunks else set()
            try:
                for n, chunk in enumerate(chunks):
                    if n not in done:
                        self._withdrawn(
                            lambda s=sku, n=n, p=chunk: self._counts.withdraw_pairs(customer_id, s, n, p),
                            deadline,
                        )
                self._withdrawn(
                    lambda s=sku, p=last: self._counts.withdraw_buyer(customer_id, s, p), deadline
                )
            except storage.ConditionFailed:
                continue  # another run withdrew the whole SKU meanwhile
        return len(bought)

    @staticmethod
    def _withdrawn(write, deadline: Deadline | None) -> None:
        if deadline is not None:
            deadline.check()
        with contextlib.suppress(storage.AlreadyExists):  # withdrawn by another run, or before
            write()

    @staticmethod
    def _once(write, deadline: Deadline | None) -> None:
        """One guarded write. A SKU's counts are items every first buyer of it writes, so
        transactions on them cancel each other (TransactionConflict) when many buy it at once:
        after the store's own retries, wait longer and send it again, rather than fail the
        record (which would run the whole batch again)."""
        for attempt in range(BUSY_ATTEMPTS):
            if deadline is not None:
                deadline.check()
            try:
                with contextlib.suppress(storage.AlreadyExists):  # counted by an earlier delivery
                    write()
                return
            except ServiceBusy:
                if attempt == BUSY_ATTEMPTS - 1:
                    raise
                time.sleep(random.uniform(0, BUSY_BACKOFF_S * 2**attempt))  # noqa: S311

    def related(self, sku: str, limit: int, cursor: str | None, *, active_only: bool) -> Page[RelatedProduct]:
        """The products bought with `sku` by at least `min_support` customers, most first."""
        product = self._products.get(sku)
        if product is None or (active_only and not product.active):
            raise NotFound(f"No product has the sku {sku!r}.")
        buyers = self._counts.buyers([sku]).get(sku, 0)
        page = page_of(
            self._cursors,
            f"related:{sku}",
            cursor,
            lambda start: self._counts.pairs(sku, self._min_support, limit, start),
        )
        catalogue = self._products.get_many(other for other, _ in page.items)
        items = [
            RelatedProduct(catalogue[other], count, confidence(count, buyers))
            for other, count in page.items
            if other in catalogue and (catalogue[other].active or not active_only)
        ]
        return Page(items, page.next_cursor)

    def for_customer(self, customer_id: str, limit: int, cursor: str | None = None) -> Page[Recommended]:
        """A customer's recommendations, ranked (domain/recommendations.py), a page at a time."""
        customer, stored = self._loyalty.get_with_profile(customer_id)
        if customer is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        return page_of(
            self._cursors,
            f"recommendations:{customer_id}",
            cursor,
            lambda start: _offset_page(self._ranked(customer_id, stored), limit, start),
        )

    def pick(self, customer_id: str, kind: str) -> Recommended | None:
        """The one product a campaign offers the customer: for `repurchase` the first SKU due
        again, for `bought_together` the first bought with theirs, for `any` the best of the
        ranked list, then the most bought active product they have not bought (None: nothing
        fits)."""
        _, stored = self._loyalty.get_with_profile(customer_id)
        ranked = self._ranked(customer_id, stored)
        wanted = {"repurchase": (REPURCHASE_DUE,), "bought_together": (BOUGHT_TOGETHER,)}.get(kind)
        for candidate in ranked:
            if wanted is None or candidate.recommendation.reason in wanted:
                return candidate
        if kind != "any" or (ranked and ranked[0].recommendation.reason == POPULAR):
            return None
        bought = {habit.sku for habit in self._habits(customer_id, stored)[0]}
        return next((r for r in self._popular() if r.product.sku not in bought), None)

    def _popular(self) -> list[Recommended]:
        if self._popular_read is not None:
            return self._popular_read
        most_bought = self._counts.popular(RANKED)
        catalogue = self._products.get_many(sku for sku, _ in most_bought)
        ranked = popular(most_bought, {s for s, p in catalogue.items() if p.active})
        found = [Recommended(catalogue[r.sku], r) for r in ranked]
        if self._reuse_popular:
            self._popular_read = found
        return found

    def _habits(self, customer_id: str, stored) -> tuple[list[SkuHabit], int]:
        """The habits that can rank, from bounded reads (and how many the customer has): repeat
        habits expected by the end of the window, latest first (those due, then the least
        overdue), the soonest expected after it, and the SKUs bought once most recently; with
        any habits still kept inside the aggregates item (written before habits had items)."""
        horizon = self._clock.now() + timedelta(days=self._window_days)
        read = (
            self._loyalty.habits_due_by(customer_id, horizon, HABITS_READ)
            + self._loyalty.habits_expected_after(customer_id, horizon, SOURCES)
            + self._loyalty.latest_single_habits(customer_id, SOURCES)
        )
        kept = dict(stored.aggregates.skus) if stored is not None else {}
        habits = list((kept | {h.sku: h for h in read}).values())
        count = max(stored.aggregates.sku_count, len(habits)) if stored is not None else len(habits)
        return habits, count

    def _ranked(self, customer_id: str, stored) -> list[Recommended]:
        habits, count = self._habits(customer_id, stored)
        if not habits:
            return self._popular()
        recent = sorted(habits, key=lambda h: (h.last_purchase_at, h.sku), reverse=True)
        sources = [h.sku for h in recent[:SOURCES]]
        buyers = self._counts.buyers(sources)
        related = [
            Related(other, source, count, buyers.get(source, 0))
            for source in sources
            for other, count in self._counts.pairs(source, self._min_support, PAIRS_PER_SOURCE, None)[0]
        ]
        catalogue = self._products.get_many([h.sku for h in habits] + [r.sku for r in related])
        active = {sku for sku, product in catalogue.items() if product.active}
        ranked = recommend(
            habits,
            related,
            self._returned(customer_id),
            active,
            self._clock.now(),
            self._window_days,
            also_bought=self._bought_beyond(customer_id, habits, count, related),
        )
        return [Recommended(catalogue[r.sku], r) for r in ranked[:RANKED]]

    def _bought_beyond(self, customer_id: str, habits: list, count: int, related: list[Related]) -> set[str]:
        """Of the candidates, those the customer bought among the habits not read (a customer of
        more SKUs than were read): one BatchGetItem of their habit items."""
        if count <= len(habits):
            return set()
        candidates = {r.sku for r in related} - {h.sku for h in habits}
        loaded = self._loyalty.load([], habits=[(customer_id, sku) for sku in sorted(candidates)])
        return {sku for (_, sku), habit in loaded.habits.items() if habit is not None}

    def _returned(self, customer_id: str) -> dict[str, int]:
        """Units returned per SKU, from the customer's newest returns (Queries of GSI by_type,
        at most RETURNS_PAGES of them: a request's reads stay bounded)."""
        returned: dict[str, int] = {}
        start = None
        for _ in range(RETURNS_PAGES):
            page, start = self._interactions.timeline(customer_id, "return", RETURNS_PAGE, start)
            for interaction in page:
                for line in interaction.items:
                    returned[line.sku] = returned.get(line.sku, 0) + line.quantity
            if start is None:
                break
        return returned


def _offset_page(
    ranked: list[Recommended], limit: int, start: dict | None
) -> tuple[list[Recommended], dict | None]:
    """A page of a ranked list by position: the cursor holds the offset of the next item."""
    offset = int((start or {}).get("offset", 0))
    end = offset + limit
    return ranked[offset:end], {"offset": end} if end < len(ranked) else None
