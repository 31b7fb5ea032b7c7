"""A customer's own change of email address: asked for in `PATCH /me`, mailed as a signed link
to the new address (from the customers stream, through the follow-up queue), applied when the
link is followed. Who else has an address is told only to whoever follows its link."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from chalicelib.domain import audit
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock, to_rfc3339
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import EDITABLE_FIELDS, Customer
from chalicelib.domain.email_change import BadLink, ConfirmationLinks, EmailChange, new_change
from chalicelib.domain.messages import email_confirmation
from chalicelib.errors import Conflict, FieldError, Gone, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.versions import update_at_version
from chalicelib.store.customers import CustomerRepository, EmailTaken, VersionConflict
from chalicelib.store.mail import REFUSED

CONFIRMATION_ROUTE = "GET /email-confirmations/{token}"


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str) -> str: ...


@dataclass(frozen=True)
class Confirmation:
    status: Literal["confirmed", "already_confirmed"]
    email: str


def _fields(customer: Customer) -> dict:
    return {name: getattr(customer, name) for name in EDITABLE_FIELDS}


def _no_longer_valid() -> Gone:
    return Gone(
        "This confirmation link is no longer valid: a newer change of address was asked for "
        "since, or the account is gone. Ask for the change again."
    )


class EmailChangeService:
    def __init__(
        self,
        customers: CustomerRepository,
        profiles: CustomerService,
        links: ConfirmationLinks,
        clock: Clock,
        mailer: Callable[[], Mailer],
    ) -> None:
        self._customers = customers
        self._profiles = profiles
        self._links = links
        self._clock = clock
        self._mailer = mailer

    # -- PATCH /me ----------------------------------------------------------------------------

    def change_my_details(
        self, customer_id: str, changes: dict, if_match: int | None, actor: Actor
    ) -> tuple[Customer, EmailChange | None]:
        """Apply a customer's own changes. A new email address is not applied: it is recorded
        as pending (replacing an earlier pending one) and mailed a link, whether it is free or
        another customer's, so the answer discloses nothing; the other fields apply at once, in
        the same write. Clearing the address, or sending the current one, applies as usual."""
        email = changes.get("email")
        if email is None:
            return self._profiles.update(customer_id, changes, if_match, actor), None

        def write(before: Customer) -> tuple[Customer, EmailChange | None]:
            if email_key(email) == before.email_key:
                # The address the customer has (perhaps in another case): no confirmation.
                return self._profiles.write_update(before, changes, actor), None
            now = self._clock.now()
            after = before.with_changes({k: v for k, v in changes.items() if k != "email"}, now)
            if after == before.with_changes({}, now):
                after = before
            change = new_change(customer_id, email, now)
            changed = audit.diff(_fields(before), _fields(after), EDITABLE_FIELDS)
            record = audit.entry(
                "customer",
                customer_id,
                "update",
                actor,
                now,
                (*changed, audit.Change("pending_email", None, email)),
                customer_id,
            )
            return self._customers.request_email_change(before, after, change, record), change

        def read() -> Customer:
            return self._profiles.get(customer_id, consistent=True)

        return update_at_version("customer", read, write, if_match, VersionConflict)

    # -- the follow-up consumer -----------------------------------------------------------------

    def send_link(self, customer_id: str, nonce: str) -> str:
        """Mail the link of the change that holds `nonce`, at most once (the claim on the change
        decides who sends). What happened, for the log: sent, or why nothing was sent."""
        change = self._customers.email_change(customer_id, consistent=True)
        if change is None or change.nonce != nonce:
            return "replaced"  # a newer change was asked for: its own message sends its link
        if change.mail_claimed_at is not None or change.confirmed_at is not None:
            return "already_sent"
        customer = self._customers.get(customer_id)
        if customer is None:
            return "customer_gone"
        now = self._clock.now()
        if change.expired(now):
            return "expired"
        message = email_confirmation(
            customer.locale,
            name=customer.name,
            preferred_name=customer.preferred_name,
            link=self._links.url(change),
            valid_for=change.expires_at - now,
        )
        if not self._customers.claim_confirmation_mail(change, now):
            return "already_sent"
        try:
            self._mailer().send(change.email, message.subject, message.text)
        except REFUSED:
            # SES did not take it: give the claim back so the redelivered message sends it. An
            # ambiguous failure (a read timeout) keeps the claim: never two links.
            self._customers.give_back_confirmation_mail(change, now)
            raise
        return "sent"

    # -- GET /email-confirmations/{token} -----------------------------------------------------------

    def confirm(self, token: str) -> Confirmation:
        """Apply the change the link names. Following it again answers `already_confirmed`;
        an edited or forged link is 400, an expired or replaced one 410, and an address that
        another customer has by now 409 (told to the link's visitor, never to the requester)."""
        try:
            claims = self._links.read(token)
        except BadLink:
            raise ValidationFailed(
                [FieldError("token", "is not a confirmation link of this service (incomplete or edited)")]
            ) from None
        customer_id = claims.customer_id

        def read() -> tuple[Customer, EmailChange]:
            change = self._customers.email_change(customer_id, consistent=True)
            customer = self._customers.get(customer_id, consistent=True)
            if change is None or customer is None or not self._links.names(claims, change):
                raise _no_longer_valid()
            return customer, change

        for _ in range(3):
            customer, change = read()
            if change.confirmed_at is not None:
                return Confirmation("already_confirmed", change.email)
            now = self._clock.now()
            if change.expired(now):
                raise Gone(
                    f"This confirmation link expired at {to_rfc3339(change.expires_at)}. "
                    "Ask for the change again."
                )
            after = customer.with_changes({"email": change.email}, now)
            changed = audit.diff(_fields(customer), _fields(after), EDITABLE_FIELDS)
            record = audit.entry(
                "customer",
                customer_id,
                "update",
                Actor(customer_id, "customer", CONFIRMATION_ROUTE),
                now,
                changed,
                customer_id,
            )
            try:
                self._customers.confirm_email_change(customer, after, change, now, record)
                return Confirmation("confirmed", change.email)
            except EmailTaken:
                raise Conflict(
                    "Another customer has this email address now, so it cannot become yours. "
                    "Ask for a change to another address.",
                    errors=[FieldError("email", "is already used by another customer")],
                ) from None
            except VersionConflict:
                continue  # the profile changed, or a concurrent visit confirmed: read again
        raise Conflict("The customer is being changed by other requests right now: retry.")
