"""Customer use cases: create, read, change, delete, list, find."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.domain import audit, ids, names
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import EDITABLE_FIELDS, Customer
from chalicelib.domain.storage import EmailTaken, VersionConflict
from chalicelib.errors import Conflict, FieldError, NotFound, ValidationFailed
from chalicelib.services.ports import Customers
from chalicelib.services.versions import retry_lost_races, update_at_version
from chalicelib.store.customers import PENDING_EMAIL_CHANGE
from chalicelib.store.pagination import CursorCodec, Page, page_of

if TYPE_CHECKING:
    from pynamodb.transactions import TransactWrite

    from chalicelib.domain.duplicates import Match
    from chalicelib.services.duplicates import DuplicateService


# A pending change of address that keeps changing under a write is re-read this many times.
MAX_PENDING_READS = 3


def _fields(customer: Customer) -> dict:
    return {name: getattr(customer, name) for name in EDITABLE_FIELDS}


def pending_change_moved(conflict: Exception) -> bool:
    """The lost race was to another request of the customer for a change of address."""
    return isinstance(conflict, VersionConflict) and conflict.record == PENDING_EMAIL_CHANGE


def _email_conflict(email: str | None) -> Conflict:
    return Conflict(
        "Another customer already has this email address.",
        errors=[FieldError("email", "is already used by another customer")],
    )


@dataclass(frozen=True)
class Created:
    customer: Customer
    # Who the new customer may be, scoring at least the duplicate threshold, best first.
    possible_duplicates: tuple[Match, ...] = ()


class CustomerService:
    def __init__(
        self,
        customers: Customers,
        cursors: CursorCodec,
        clock: Clock,
        new_id: Callable[[], str] = lambda: ids.new_id(ids.CUSTOMER),
        duplicates: DuplicateService | None = None,
    ) -> None:
        self._customers = customers
        self._cursors = cursors
        self._clock = clock
        self._new_id = new_id
        self._duplicates = duplicates

    def create(
        self,
        fields: dict,
        actor: Actor,
        also: Callable[[TransactWrite, Customer], None] | None = None,
        *,
        flagged: list[Match] | None = None,
    ) -> Customer:
        """Create a profile; its email (if any) must not belong to anyone else. `also(t,
        customer)` adds to the same transaction (VersionConflict if one of its conditions
        fails). Its likely duplicates are noted with it (see `create_noting_duplicates`);
        `flagged`: they were looked for already (DuplicateService.detector)."""
        return self.create_noting_duplicates(fields, actor, also, flagged=flagged).customer

    def create_noting_duplicates(
        self,
        fields: dict,
        actor: Actor,
        also: Callable[[TransactWrite, Customer], None] | None = None,
        not_before: frozenset[str] = frozenset(),
        *,
        flagged: list[Match] | None = None,
    ) -> Created:
        """`create`, answering the customers the new one may be: those scoring at least the
        duplicate threshold, looked for before the write (its fields are known) and, when there
        are any, noted in the creation's transaction (their ids and scores: the customers
        stream publishes them as `customer.possible_duplicate`). `not_before`: ids of customers
        created after this one by the same request (a batch's later items), which its retry
        may find written already and must not take for this one's duplicates."""
        now = self._clock.now()
        customer = Customer(id=self._new_id(), created_at=now, updated_at=now, **fields)
        duplicates = self._duplicates
        if flagged is None:
            flagged = duplicates.possible_duplicates(customer, not_before) if duplicates else []
        record = audit.entry(
            "customer",
            customer.id,
            "create",
            actor,
            now,
            audit.diff(None, _fields(customer), EDITABLE_FIELDS),
            customer.id,
        )

        def together(t: TransactWrite) -> None:
            if flagged and self._duplicates is not None:
                self._duplicates.note(t, customer.id, flagged, now)
            if also is not None:
                also(t, customer)

        try:
            added = self._customers.add(customer, record, together if (flagged or also) else None)
        except EmailTaken:
            raise _email_conflict(customer.email) from None
        return Created(added, tuple(flagged))

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer:
        """`consistent` before a conditional write: a client holding a fresh ETag never gets
        a spurious 412 from a stale read."""
        customer = self._customers.get(customer_id, consistent=consistent)
        if customer is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        return customer

    def require_known(self, customer_id: str) -> None:
        """NotFound unless the customer exists or existed (deleted or erased: a tombstone),
        for what outlives a profile, such as its audit trail."""
        if self._customers.get(customer_id) is None and not self._customers.was_deleted(customer_id):
            raise NotFound(f"No customer has the id {customer_id!r}.")

    def get_many(self, customer_ids: list[str]) -> dict[str, Customer]:
        return self._customers.get_many(customer_ids) if customer_ids else {}

    def update(self, customer_id: str, changes: dict, if_match: int | None, actor: Actor) -> Customer:
        """Apply a partial update. With `if_match`, only to that version (else 412); without,
        a concurrent change is re-read and the update applied on top of it, never lost."""

        return update_at_version(
            "customer",
            lambda: self.get(customer_id, consistent=True),
            lambda before: self.write_update(before, changes, actor),
            if_match,
        )

    def write_update(
        self, before: Customer, changes: dict, actor: Actor, *, sets_email: bool | None = None
    ) -> Customer:
        """One attempt of `update`, on the profile as read: VersionConflict if it changed. A
        write that sets the address (by default: one that changes it) withdraws a pending
        self-service change of address in the same transaction, so that change's link can
        never override this address; `sets_email=True` withdraws it even when the address,
        and the whole profile, stay as they are (the customer sent the address they have)."""
        now = self._clock.now()
        after = before.with_changes(changes, now)
        unchanged = after == before.with_changes({}, now)
        if sets_email is None:
            sets_email = after.email != before.email
        if unchanged and not sets_email:
            return before
        changed = audit.diff(_fields(before), _fields(after), EDITABLE_FIELDS)

        def attempt() -> Customer:
            pending = self._customers.email_change(before.id, consistent=True) if sets_email else None
            live = pending is not None and pending.pending
            withdrawn = (audit.Change("pending_email", pending.email, None),) if live else ()
            record = audit.entry("customer", before.id, "update", actor, now, changed + withdrawn, before.id)
            try:
                if unchanged:
                    if live:
                        self._customers.withdraw_email_change(before, pending, now, record)
                    return before
                if sets_email:
                    return self._customers.update_setting_email(before, after, record, pending)
                return self._customers.update(before, after, record)
            except EmailTaken:
                raise _email_conflict(after.email) from None

        # The customer asked for a change meanwhile: withdraw that one.
        return retry_lost_races(
            attempt, VersionConflict(before.id), attempts=MAX_PENDING_READS, retrying=pending_change_moved
        )

    def delete(self, customer_id: str, actor: Actor) -> None:
        """Remove the profile and its lookup entries now; its timeline is purged from the
        customers stream (see chalicelib/events/customer_stream.py)."""

        def write(customer: Customer) -> None:
            merge_id = self._customers.running_merge(customer_id)
            if merge_id is not None:
                raise Conflict(
                    f"Merge {merge_id} of customer {customer_id!r} is running: delete the customer "
                    f"once it has completed (GET /merges/{merge_id} shows when)."
                )
            now = self._clock.now()
            record = audit.entry("customer", customer_id, "delete", actor, now, (), customer_id)
            self._customers.delete(customer, now, record)

        update_at_version("customer", lambda: self.get(customer_id, consistent=True), write, None)

    def list_newest(self, limit: int, cursor: str | None) -> Page[Customer]:
        scope = "customers"
        return page_of(self._cursors, scope, cursor, lambda start: self._customers.list_newest(limit, start))

    def find_by_email(self, email: str) -> Page[Customer]:
        customer = self._customers.by_email(email_key(email))
        return Page([customer] if customer else [], None)

    def search(self, query: str, limit: int, cursor: str | None) -> Page[Customer]:
        query_words = names.words(query)
        if not query_words or max(len(w) for w in query_words) < names.MIN_QUERY_LENGTH:
            raise ValidationFailed(
                [FieldError("q", f"needs a word of at least {names.MIN_QUERY_LENGTH} letters or digits")]
            )
        scope = "customers?q=" + " ".join(query_words)
        return page_of(
            self._cursors, scope, cursor, lambda start: self._customers.search(query_words, limit, start)
        )
