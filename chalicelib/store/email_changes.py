"""The customer repository's part for a change of email address that waits for its
confirmation: one item, `CUSTOMER#<id>`/`EMAIL_CHANGE`, replaced by each new request and written
in the transactions of the profile changes it goes with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.email_change import EmailChange
from chalicelib.domain.storage import VersionConflict
from chalicelib.store.audit import audit_item
from chalicelib.store.keys import EMAIL_CHANGE_SK, PROFILE_SK, customer_pk
from chalicelib.store.models import CustomerModel, EmailChangeModel
from chalicelib.store.transactions import failed_conditions, transaction

# The `record` of a VersionConflict when the pending change of email address is not the one
# read (a concurrent request of the same customer replaced or made it): read it again; the
# profile may be unchanged. Any other VersionConflict: the profile changed (or went away) since
# it was read, or another item the write was conditional on did.
PENDING_EMAIL_CHANGE = "pending email change"


@dataclass(frozen=True)
class PendingAsRead:
    """The pending change of email address a write relies on, as read (None: there was none)."""

    change: EmailChange | None


def _change_model(change: EmailChange) -> EmailChangeModel:
    return EmailChangeModel(
        customer_pk(change.customer_id),
        EMAIL_CHANGE_SK,
        customer_id=change.customer_id,
        email=change.email,
        nonce=change.nonce,
        requested_at=to_rfc3339(change.requested_at),
        expires_at=to_rfc3339(change.expires_at),
        recent_requests=[to_rfc3339(at) for at in change.recent_requests],
    )


def _change_key(customer_id: str) -> EmailChangeModel:
    return EmailChangeModel(customer_pk(customer_id), EMAIL_CHANGE_SK)


def _still(change: EmailChange | None):
    """The condition that the pending change is still the one read (None: still none)."""
    if change is None:
        return EmailChangeModel.pk.does_not_exist()
    return EmailChangeModel.nonce == change.nonce


def withdraw(t: TransactWrite, customer_id: str, read: EmailChange | None, at: datetime) -> None:
    """In `t`: withdraw the pending change `read` (its link stops working; the request times
    stay, so withdrawing never resets the limits), or check that there still is none, or that
    a withdrawn or confirmed one is still the same, so a request committed meanwhile fails
    the transaction instead of surviving it."""
    if read is not None and read.withdrawn_at is None:
        t.update(
            _change_key(customer_id),
            actions=[EmailChangeModel.withdrawn_at.set(to_rfc3339(at))],
            condition=_still(read),
        )
    else:
        t.condition_check(EmailChangeModel, customer_pk(customer_id), EMAIL_CHANGE_SK, condition=_still(read))


def _change_from(item: EmailChangeModel) -> EmailChange:
    return EmailChange(
        customer_id=item.customer_id,
        email=item.email,
        nonce=item.nonce,
        requested_at=parse_rfc3339(item.requested_at),
        expires_at=parse_rfc3339(item.expires_at),
        mail_claimed_at=parse_rfc3339(item.mail_claimed_at) if item.mail_claimed_at else None,
        confirmed_at=parse_rfc3339(item.confirmed_at) if item.confirmed_at else None,
        withdrawn_at=parse_rfc3339(item.withdrawn_at) if item.withdrawn_at else None,
        # Items written before the limits existed count as one request, at requested_at.
        recent_requests=tuple(parse_rfc3339(at) for at in item.recent_requests or [item.requested_at]),
    )


class PendingEmailChanges:
    """CustomerRepository's methods for a pending change of email address."""

    _region: str
    _update: Callable[..., Customer]  # CustomerRepository's (whose failures `_lost_race` names)

    def _lost_race(self, customer_id: str, relied_on: PendingAsRead | None) -> Exception:
        if relied_on is not None:
            now = self.email_change(customer_id, consistent=True)
            if (now and now.nonce) != (relied_on.change and relied_on.change.nonce):
                return VersionConflict(customer_id, record=PENDING_EMAIL_CHANGE)
        return VersionConflict(customer_id)

    def request_email_change(
        self,
        before: Customer,
        after: Customer,
        change: EmailChange,
        audit: AuditEntry,
        replacing: EmailChange | None,
    ) -> Customer:
        """Record `change` in place of `replacing` (the pending change the limits were checked
        on, None if there was none; its link then stops working), with the profile's other
        changes (`after`), if the profile is still `before` (else VersionConflict) and the
        pending change still `replacing` (else VersionConflict of PENDING_EMAIL_CHANGE). The
        address is not checked here: whether someone else has it is told only to its confirmer."""

        def put(t: TransactWrite) -> None:
            t.save(_change_model(change), condition=_still(replacing))

        if after != before:
            return self._update(before, after, audit, put, PendingAsRead(replacing))
        self._check_version_and(before, audit, put, PendingAsRead(replacing))
        return before

    def withdraw_email_change(
        self, before: Customer, pending: EmailChange, at: datetime, audit: AuditEntry
    ) -> None:
        """Withdraw `pending` while the profile stays `before` (the customer sent the address
        they have): VersionConflict as for `update`."""
        self._check_version_and(
            before, audit, lambda t: withdraw(t, before.id, pending, at), PendingAsRead(pending)
        )

    def _check_version_and(
        self,
        before: Customer,
        audit: AuditEntry,
        also: Callable[[TransactWrite], None],
        relied_on: PendingAsRead,
    ) -> None:
        try:
            with transaction(self._region) as t:
                t.condition_check(
                    CustomerModel,
                    customer_pk(before.id),
                    PROFILE_SK,
                    condition=CustomerModel.version == before.version,
                )
                also(t)
                t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise
            raise self._lost_race(before.id, relied_on) from error

    def confirm_email_change(
        self, before: Customer, after: Customer, change: EmailChange, at: datetime, audit: AuditEntry
    ) -> Customer:
        """Apply the confirmed address (`after`) and mark `change` confirmed, once: the write
        fails (VersionConflict) if the change was confirmed, replaced or withdrawn meanwhile,
        and is EmailTaken if another customer has the address by now."""

        def mark_confirmed(t: TransactWrite) -> None:
            t.update(
                _change_key(change.customer_id),
                actions=[EmailChangeModel.confirmed_at.set(to_rfc3339(at))],
                condition=(EmailChangeModel.nonce == change.nonce)
                & EmailChangeModel.confirmed_at.does_not_exist()
                & EmailChangeModel.withdrawn_at.does_not_exist(),
            )

        return self._update(before, after, audit, mark_confirmed)

    def email_change(self, customer_id: str, *, consistent: bool = False) -> EmailChange | None:
        try:
            item = EmailChangeModel.get(customer_pk(customer_id), EMAIL_CHANGE_SK, consistent_read=consistent)
        except DoesNotExist:
            return None
        return _change_from(item)

    def claim_confirmation_mail(self, change: EmailChange, at: datetime) -> bool:
        """Claim the sending of `change`'s link: True for the one caller that may send it."""
        try:
            _change_key(change.customer_id).update(
                actions=[EmailChangeModel.mail_claimed_at.set(to_rfc3339(at))],
                condition=(EmailChangeModel.nonce == change.nonce)
                & EmailChangeModel.mail_claimed_at.does_not_exist()
                & EmailChangeModel.confirmed_at.does_not_exist()
                & EmailChangeModel.withdrawn_at.does_not_exist(),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def give_back_confirmation_mail(self, change: EmailChange, claimed_at: datetime) -> None:
        """Undo our claim (SES refused the message), unless the change moved on meanwhile."""
        try:
            _change_key(change.customer_id).update(
                actions=[EmailChangeModel.mail_claimed_at.remove()],
                condition=(EmailChangeModel.nonce == change.nonce)
                & (EmailChangeModel.mail_claimed_at == to_rfc3339(claimed_at)),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise
