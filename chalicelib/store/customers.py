"""Customer repository: profiles, their email lookup entries and name-search entries, kept in
step by DynamoDB transactions so no entry ever exists without its profile. Its parts by subject:
finding customers (customer_search.py), a pending change of email address (email_changes.py),
deleting and erasing (customer_tombstones.py)."""

from __future__ import annotations

from collections.abc import Callable

from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.customers import Customer
from chalicelib.domain.email_change import EmailChange
from chalicelib.domain.storage import EmailTaken, VersionConflict
from chalicelib.store.audit import audit_item
from chalicelib.store.customer_items import customer_from_item, customer_item, token_items
from chalicelib.store.customer_search import CustomerLookups
from chalicelib.store.customer_tombstones import CustomerTombstones
from chalicelib.store.email_changes import PENDING_EMAIL_CHANGE, PendingAsRead, PendingEmailChanges, withdraw
from chalicelib.store.keys import PROFILE_SK, customer_pk, email_pk
from chalicelib.store.models import CustomerModel, EmailLookupModel
from chalicelib.store.transactions import ITEM_LIMIT, failed_conditions, transaction

__all__ = ["PENDING_EMAIL_CHANGE", "CustomerRepository", "customer_from_item"]


class CustomerRepository(CustomerLookups, PendingEmailChanges, CustomerTombstones):
    def __init__(self, region: str) -> None:
        self._region = region

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None:
        """`consistent`: a strongly consistent read, for a read a conditional write relies on."""
        try:
            return customer_from_item(
                CustomerModel.get(customer_pk(customer_id), PROFILE_SK, consistent_read=consistent)
            )
        except DoesNotExist:
            return None

    def get_many(self, customer_ids: list[str], *, consistent: bool = False) -> dict[str, Customer]:
        keys = [(customer_pk(cid), PROFILE_SK) for cid in dict.fromkeys(customer_ids)]
        rows = CustomerModel.batch_get(keys, consistent_read=consistent)
        return {item.id: customer_from_item(item) for item in rows}

    def add(
        self,
        customer: Customer,
        audit: AuditEntry | None = None,
        also: Callable[[TransactWrite], None] | None = None,
    ) -> Customer:
        """Create the profile with its lookup entries; `also` adds to the same transaction
        (a sign-in link, say). EmailTaken if the address is another customer's;
        VersionConflict if a condition of `also` failed."""
        item = customer_item(customer)
        try:
            with transaction(self._region) as t:
                t.save(item, condition=CustomerModel.pk.does_not_exist())
                for key in customer.email_keys:
                    _claim_email(t, customer.id, key)
                for token in token_items(customer):
                    t.save(token)
                _audit_and_also(t, audit, also)
        except TransactWriteError as error:
            self._refuse_if_taken(customer, error)
            if also is None or not any(failed_conditions(error)):
                raise
            raise VersionConflict(customer.id) from error
        return customer_from_item(item)

    def update(self, before: Customer, after: Customer, audit: AuditEntry | None = None) -> Customer:
        """Write `after` if the stored profile is still `before` (same version). A change of
        the address goes through `update_setting_email` (with no pending change read)."""
        if before.email != after.email:
            return self.update_setting_email(before, after, audit, None)
        return self._update(before, after, audit)

    def update_setting_email(
        self, before: Customer, after: Customer, audit: AuditEntry | None, pending: EmailChange | None
    ) -> Customer:
        """`update` for a write that sets the address: the pending change of address
        `pending` (as the caller read it, None if there was none) is withdrawn in the same
        transaction, conditional on being still the one read (else VersionConflict of
        PENDING_EMAIL_CHANGE), so its link can never override this address."""
        return self._update(
            before,
            after,
            audit,
            lambda t: withdraw(t, before.id, pending, after.updated_at),
            PendingAsRead(pending),
        )

    def update_adopting(
        self,
        before: Customer,
        after: Customer,
        adopted: Customer,
        audit: AuditEntry,
        also: Callable[[TransactWrite], None],
    ) -> Customer:
        """`update` of a merge's survivor: the addresses of `adopted` (the merged customer)
        that `after` keeps pass to it, each lookup re-pointed on condition that it is still
        `adopted`'s; `also` adds the rest of the merge to the same transaction."""
        return self._update(before, after, audit, also, adopting=adopted)

    def _update(
        self,
        before: Customer,
        after: Customer,
        audit: AuditEntry | None,
        also: Callable[[TransactWrite], None] | None = None,
        relied_on: PendingAsRead | None = None,
        adopting: Customer | None = None,
    ) -> Customer:
        """`update`, with what `also` adds to the same transaction; `relied_on`: the pending
        change of address `also` is conditional on (a failure then names PENDING_EMAIL_CHANGE
        if it moved on); `adopting`: a customer whose addresses pass to `after` (a merge)."""
        item = customer_item(after)
        item.version = before.version
        old_tokens = {_key_of(token) for token in token_items(before)}
        new_tokens = token_items(after)
        # Validation keeps a profile near half the limit; the audit entry holds each changed
        # field twice (before and after), so it is the item that can pass the limit.
        too_large = (
            f"The change to customer {after.id} is too large to record: its audit entry, which "
            f"holds every changed field before and after, would be over {ITEM_LIMIT}."
        )
        try:
            with transaction(self._region, too_large) as t:
                t.save(item)
                kept = set(after.email_keys)
                for key in before.email_keys:
                    if key not in kept:
                        t.delete(
                            EmailLookupModel(email_pk(key)),
                            condition=EmailLookupModel.customer_id == before.id,
                        )
                adopted = set(adopting.email_keys) if adopting else set()
                for key in after.email_keys:
                    if key in adopted:
                        _repoint_email(t, key, adopting.id, after.id)
                    elif key not in before.email_keys:
                        _claim_email(t, after.id, key)
                new_keys = {_key_of(token) for token in new_tokens}
                if new_keys != old_tokens:
                    for token in token_items(before):
                        if _key_of(token) not in new_keys:
                            t.delete(token)
                    for token in new_tokens:
                        if _key_of(token) not in old_tokens:
                            t.save(token)
                _audit_and_also(t, audit, also)
        except TransactWriteError as error:
            self._refuse_if_taken(after, error, adopting.id if adopting else None)
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            raise self._lost_race(after.id, relied_on) from error
        return customer_from_item(item)

    def _refuse_if_taken(
        self, customer: Customer, error: TransactWriteError, adopting: str | None = None
    ) -> None:
        """EmailTaken if the failed write was for an address another customer has (but the
        customer whose addresses it adopts)."""
        if customer.email_key and self._email_owner(customer.email_key) not in (None, customer.id, adopting):
            raise EmailTaken(customer.email) from error


def _key_of(item) -> tuple[str, str, str]:
    """A lookup item's identity: its kind and keys (the kinds share the table)."""
    return type(item).__name__, item.pk, item.sk


def _claim_email(t: TransactWrite, customer_id: str, key: str) -> None:
    """In `t`: an email lookup entry of the customer, conditional on the address being nobody's."""
    t.save(
        EmailLookupModel(email_pk(key), customer_id=customer_id),
        condition=EmailLookupModel.pk.does_not_exist(),
    )


def _repoint_email(t: TransactWrite, key: str, owner: str, new_owner: str) -> None:
    """In `t`: an address of `owner` passes to `new_owner`, conditional on it being still `owner`'s."""
    t.update(
        EmailLookupModel(email_pk(key)),
        actions=[EmailLookupModel.customer_id.set(new_owner)],
        condition=EmailLookupModel.customer_id == owner,
    )


def _audit_and_also(
    t: TransactWrite, audit: AuditEntry | None, also: Callable[[TransactWrite], None] | None
) -> None:
    if audit is not None:
        t.save(audit_item(audit))
    if also is not None:
        also(t)
