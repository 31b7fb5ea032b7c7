"""A customer's own change of email address: asked for in `PATCH /me` (limited per customer),
mailed as a signed link to the new address (from the customers stream, through the follow-up
queue), described by `GET` of the link and applied by its `POST` (the person's click: mail
scanners and previews only GET). Who else has an address is told only to whoever confirms."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from chalicelib.domain import audit
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock, to_rfc3339
from chalicelib.domain.contact import email_key
from chalicelib.domain.customers import EDITABLE_FIELDS, Customer
from chalicelib.domain.email_change import (
    BadLink,
    ConfirmationLinks,
    EmailChange,
    EmailChangeLimits,
    LinkClaims,
    new_change,
)
from chalicelib.domain.messages import email_confirmation
from chalicelib.domain.storage import EmailTaken, MailRefused, VersionConflict
from chalicelib.errors import Conflict, FieldError, Gone, TooManyRequests, ValidationFailed
from chalicelib.services.customers import CustomerService, pending_change_moved
from chalicelib.services.ports import EmailChanges, Mailer
from chalicelib.services.versions import retry_lost_races, update_at_version

CONFIRMATION_ROUTE = "POST /email-confirmations/{token}"
# A pending change that keeps changing under a request (the same customer's concurrent
# requests) is read again this many times before the request is told to retry.
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Confirmation:
    status: Literal["pending", "confirmed", "already_confirmed"]
    email: str


def _fields(customer: Customer) -> dict:
    return {name: getattr(customer, name) for name in EDITABLE_FIELDS}


def _no_longer_valid() -> Gone:
    return Gone(
        "This confirmation link is no longer valid: a newer change of address was asked for "
        "since, the address was changed otherwise, or the account is gone. Ask for the change again."
    )


def _expired(at: datetime) -> Gone:
    return Gone(f"This confirmation link expired at {to_rfc3339(at)}. Ask for the change again.")


class EmailChangeService:
    def __init__(
        self,
        customers: EmailChanges,
        profiles: CustomerService,
        links: ConfirmationLinks,
        clock: Clock,
        mailer: Callable[[], Mailer],
        limits: EmailChangeLimits | None = None,
    ) -> None:
        self._customers = customers
        self._profiles = profiles
        self._links = links
        self._clock = clock
        self._mailer = mailer
        self._limits = limits or EmailChangeLimits()

    # -- PATCH /me ----------------------------------------------------------------------------

    def change_my_details(
        self, customer_id: str, changes: dict, if_match: int | None, actor: Actor
    ) -> tuple[Customer, EmailChange | None]:
        """Apply a customer's own changes. A new email address is not applied: it is recorded
        as pending (replacing an earlier pending one) and mailed a link, whether it is free or
        another customer's, so the answer discloses nothing; the other fields apply at once, in
        the same write. Requests for a new address are limited per customer (TooManyRequests,
        whatever the address). Clearing the address, or sending the current one, applies at
        once and withdraws a pending change."""
        if "email" not in changes:
            return self._profiles.update(customer_id, changes, if_match, actor), None
        email = changes["email"]

        def write(before: Customer) -> tuple[Customer, EmailChange | None]:
            if email is None or email_key(email) == before.email_key:
                # No address, or the one the customer has (perhaps in another case): no mail.
                return self._profiles.write_update(before, changes, actor, sets_email=True), None
            # Another request of this customer came first: count it too.
            return retry_lost_races(
                lambda: self._request(before, changes, email, actor),
                VersionConflict(customer_id),
                attempts=MAX_ATTEMPTS,
                retrying=pending_change_moved,
            )

        def read() -> Customer:
            return self._profiles.get(customer_id, consistent=True)

        return update_at_version("customer", read, write, if_match)

    def _request(
        self, before: Customer, changes: dict, email: str, actor: Actor
    ) -> tuple[Customer, EmailChange]:
        now = self._clock.now()
        previous = self._customers.email_change(before.id, consistent=True)
        wait = self._limits.retry_after(previous, now)
        if wait is not None:
            raise TooManyRequests(
                "You asked for changes of email address too often: each one mails a link. "
                f"Try again in {wait} seconds.",
                retry_after_s=wait,
            )
        after = before.with_changes({k: v for k, v in changes.items() if k != "email"}, now)
        if after == before.with_changes({}, now):
            after = before
        change = new_change(before.id, email, now, previous)
        changed = audit.diff(_fields(before), _fields(after), EDITABLE_FIELDS)
        record = audit.entry(
            "customer",
            before.id,
            "update",
            actor,
            now,
            (
                *changed,
                audit.Change(
                    "pending_email", previous.email if previous and previous.pending else None, email
                ),
            ),
            before.id,
        )
        return self._customers.request_email_change(before, after, change, record, previous), change

    # -- the follow-up consumer -----------------------------------------------------------------

    def send_link(self, customer_id: str, nonce: str) -> str:
        """Mail the link of the change that holds `nonce`, at most once (the claim on the change
        decides who sends). What happened, for the log: sent, or why nothing was sent."""
        change = self._customers.email_change(customer_id, consistent=True)
        if change is None or change.nonce != nonce:
            return "replaced"  # a newer change was asked for: its own message sends its link
        if change.withdrawn_at is not None:
            return "withdrawn"
        if change.mail_claimed_at is not None or change.confirmed_at is not None:
            return "already_sent"
        customer = self._customers.get(customer_id)
        if customer is None:
            return "customer_gone"
        now = self._clock.now()
        if change.expired(now):
            return "expired"
        # The address is not confirmed yet: nothing the customer typed goes to it (no name).
        message = email_confirmation(
            customer.locale, link=self._links.url(change), valid_for=change.expires_at - now
        )
        if not self._customers.claim_confirmation_mail(change, now):
            return "already_sent"
        try:
            self._mailer().send(change.email, message.subject, message.text)
        except MailRefused:
            # SES did not take it: give the claim back so the redelivered message sends it. An
            # ambiguous failure (a read timeout) keeps the claim: never two links.
            self._customers.give_back_confirmation_mail(change, now)
            raise
        return "sent"

    # -- /email-confirmations/{token} -----------------------------------------------------------

    def describe(self, token: str) -> Confirmation:
        """What the link would confirm, changing nothing (GET: mail scanners and link
        previews open links): `pending` or `already_confirmed`, with the address; 400 and 410
        as for `confirm`."""
        claims = self._claims(token)
        _, change = self._change_for(claims)
        if change.confirmed_at is not None:
            return Confirmation("already_confirmed", change.email)
        if change.expired(self._clock.now()):
            raise _expired(change.expires_at)
        return Confirmation("pending", change.email)

    def confirm(self, token: str) -> Confirmation:
        """Apply the change the link names (POST: the person's own click). Confirming again
        answers `already_confirmed`; an edited or forged link is 400, an expired, replaced or
        withdrawn one 410, and an address that another customer has by now 409 (told to the
        link's visitor, never to the requester)."""
        claims = self._claims(token)
        customer_id = claims.customer_id

        def attempt() -> Confirmation:
            customer, change = self._change_for(claims)
            if change.confirmed_at is not None:
                return Confirmation("already_confirmed", change.email)
            now = self._clock.now()
            if change.expired(now):
                raise _expired(change.expires_at)
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
            except EmailTaken:
                raise Conflict(
                    "Another customer has this email address now, so it cannot become yours. "
                    "Ask for a change to another address.",
                    errors=[FieldError("email", "is already used by another customer")],
                ) from None
            return Confirmation("confirmed", change.email)

        # A lost race: the profile changed, or a concurrent visit confirmed. Read again.
        return retry_lost_races(
            attempt,
            Conflict("The customer is being changed by other requests right now: retry."),
            attempts=MAX_ATTEMPTS,
        )

    def _claims(self, token: str) -> LinkClaims:
        try:
            claims = self._links.read(token)
        except BadLink:
            raise ValidationFailed(
                [FieldError("token", "is not a confirmation link of this service (incomplete or edited)")]
            ) from None
        if self._clock.now() >= claims.expires_at:
            raise _expired(claims.expires_at)  # whatever is stored: the signed expiry holds
        return claims

    def _change_for(self, claims: LinkClaims) -> tuple[Customer, EmailChange]:
        change = self._customers.email_change(claims.customer_id, consistent=True)
        customer = self._customers.get(claims.customer_id, consistent=True)
        if (
            change is None
            or customer is None
            or change.withdrawn_at is not None
            or not self._links.names(claims, change)
        ):
            raise _no_longer_valid()
        return customer, change
