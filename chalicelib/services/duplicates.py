"""Duplicate detection: a customer's likely duplicates, scored and explained; the candidates a
new customer is created with; two customers recorded as different people."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from chalicelib.domain import audit, duplicates
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.duplicates import Match
from chalicelib.domain.storage import NotFound as Missing
from chalicelib.errors import FieldError, MergedInto, NotFound, Unprocessable
from chalicelib.services.ports import Customers, Duplicates, Transaction
from chalicelib.store.pagination import CursorCodec, Key, Page, page_of

if TYPE_CHECKING:
    from datetime import datetime


def _ranked(customer: Customer, profiles: Iterable[Customer]) -> list[Match]:
    """`profiles` scored as `customer`'s possible duplicates, best first (never itself)."""
    found = (duplicates.compare(customer, p) for p in profiles if p.id != customer.id)
    return duplicates.ranked([m for m in found if m is not None])


def _unknown(customer_id: str, field: str | None = None) -> NotFound:
    errors = [FieldError(field, "names no customer")] if field else None
    return NotFound(f"No customer has the id {customer_id!r}.", errors=errors)


class DuplicateService:
    def __init__(
        self,
        duplicates_store: Duplicates,
        customers: Customers,
        cursors: CursorCodec | None,
        clock: Clock,
        threshold: float = duplicates.DEFAULT_THRESHOLD,
        resolve_alias: Callable[[str], str | None] = lambda customer_id: None,
    ) -> None:
        self._store = duplicates_store
        self._resolve_alias = resolve_alias
        self._customers = customers
        self._cursors = cursors
        self._clock = clock
        self._threshold = threshold

    def matches(self, customer: Customer, *, stored: bool = True, consistent: bool = False) -> list[Match]:
        """Everyone who may be `customer`, best first: found by key, read in one batch, scored;
        never itself, nor anyone recorded as another person (`stored=False`: a profile not
        written yet, which has no such records), nor an id whose profile is gone.
        `consistent`: every read strongly consistent (the decision must see what was just
        written)."""
        candidates = self._store.candidate_ids(customer, consistent=consistent)
        if not candidates:
            return []
        others = self._store.not_duplicates(customer.id) if stored else set()
        profiles = self._customers.get_many(
            [cid for cid in candidates if cid not in others], consistent=consistent
        )
        return _ranked(customer, profiles.values())

    def for_customer(self, customer_id: str, limit: int, cursor: str | None) -> Page[Match]:
        """The customer's likely duplicates, a page of them (the list is made again for each
        page; a cursor names the last one shown, by score and id)."""
        customer = self._customers.get(customer_id)
        if customer is None:
            raise _unknown(customer_id)
        ranked = self.matches(customer)
        return page_of(
            self._cursors,
            f"customers/{customer_id}/duplicates",
            cursor,
            lambda start: _after(ranked, start, limit),
        )

    def possible_duplicates(
        self, customer: Customer, ignored: frozenset[str] = frozenset(), *, consistent: bool = False
    ) -> list[Match]:
        """The candidates of a profile about to be created that score at least the threshold,
        but for the `ignored` ids (`consistent`: see `matches`)."""
        found = self.matches(customer, stored=False, consistent=consistent)
        return [m for m in found if m.score >= self._threshold and m.customer_id not in ignored]

    def detector(self, customers: list[Customer]) -> Callable[[Customer, list[Customer]], list[Match]]:
        """`possible_duplicates` of many profiles about to be created, one by one (a bulk
        import's chunk): the candidates of all are found by key and read in batches now; the
        function answers, for one of them, its candidates scored with `created`: the profiles
        written since (by the same writer, such as the chunk's earlier rows), which the reads
        did not see, where its keys would have found them."""
        found = self._store.candidate_ids_of(customers)
        profiles = self._customers.get_many(list(dict.fromkeys(c for ids in found.values() for c in ids)))

        written: dict[str, frozenset[str]] = {}

        def possible(customer: Customer, created: list[Customer]) -> list[Match]:
            pool = {cid: profiles[cid] for cid in found.get(customer.id, ()) if cid in profiles}
            read = self._store.keys_read(customer)
            for other in created:
                if len(pool) >= duplicates.MAX_CANDIDATES:
                    break  # as many as a lookup of its own would score
                if other.id not in written:
                    written[other.id] = self._store.keys_written(other)
                if other.id not in pool and read & written[other.id]:
                    pool[other.id] = other
            return [m for m in _ranked(customer, pool.values()) if m.score >= self._threshold]

        return possible

    def note(self, t: Transaction, customer_id: str, matches: list[Match], at: datetime) -> None:
        """In the creation's transaction `t`: the candidates found (see possible_duplicates)."""
        self._store.note_candidates(t, customer_id, [(m.customer_id, m.score) for m in matches], at)

    def record_not_duplicate(self, customer_id: str, other_id: str, actor: Actor) -> None:
        """Record that the two are different people, under both: neither is suggested as the
        other's duplicate again. Recording it again changes nothing."""
        if other_id == customer_id:
            raise Unprocessable(
                "A customer is always the same person as itself.",
                errors=[FieldError("customer_id", "is the customer of the path: name another customer")],
            )
        found = self._customers.get_many([customer_id, other_id])
        if customer_id not in found:
            raise _unknown(customer_id)
        if other_id not in found:
            into = self._resolve_alias(other_id)
            if into is not None:
                raise MergedInto(
                    f"Customer {other_id} was merged into {into}: name {into} instead.",
                    into,
                    [FieldError("customer_id", f"was merged into {into}")],
                )
            raise _unknown(other_id, "customer_id")
        now = self._clock.now()
        record = audit.entry(
            "customer",
            customer_id,
            "not_duplicate",
            actor,
            now,
            (audit.Change("not_duplicate_of", None, other_id),),
            customer_id,
        )
        try:
            self._store.record_not_duplicate(customer_id, other_id, now, actor.subject, record)
        except Missing as gone:  # deleted since it was read
            raise _unknown(str(gone), None if str(gone) == customer_id else "customer_id") from None


def _after(ranked: list[Match], start: Key | None, limit: int) -> tuple[list[Match], Key | None]:
    rest = ranked
    if start is not None:
        position = (-float(start.get("score", 0)), str(start.get("customer_id", "")))
        rest = [m for m in ranked if (-m.score, m.customer_id) > position]
    page = rest[:limit]
    more = len(rest) > limit
    return page, ({"score": page[-1].score, "customer_id": page[-1].customer_id} if more else None)
