"""Who a signed-in customer is: a Cognito user's `sub` is a UUID of the user pool, not a customer
id, so each customer token is mapped through a link (store/identities.py). Links are made when
a user confirms their sign-up (the Cognito post-confirmation trigger: the customer with the
user's verified email address if no other user is linked to it, else a new customer) or by
staff (also for a user the trigger left unlinked, or failed to link)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from chalicelib.auth import Principal
from chalicelib.domain import audit, storage
from chalicelib.domain.audit import Actor, AuditEntry
from chalicelib.domain.clock import Clock
from chalicelib.domain.contact import ContactError, normalize_email, normalize_locale
from chalicelib.domain.customers import DEFAULT_LOCALE, Customer
from chalicelib.domain.identities import Identity
from chalicelib.errors import Conflict, FieldError, NotFound, ValidationFailed
from chalicelib.services.customers import CustomerService
from chalicelib.services.ports import Identities
from chalicelib.services.versions import retry_lost_races
from chalicelib.store.keys import storable

if TYPE_CHECKING:
    from pynamodb.transactions import TransactWrite

SIGN_UP = "PostConfirmation_ConfirmSignUp"
SIGN_UP_ACTOR = Actor("cognito-sign-up", "system", "Cognito PostConfirmation")
MAX_NAME = 200
# Each attempt of the trigger re-reads after losing a race (a concurrent invocation, the address
# taken meanwhile); Cognito gives the function 5 seconds.
MAX_SIGN_UP_ATTEMPTS = 3


def pool_issuer(region: str, user_pool_id: str) -> str:
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


class IdentityService:
    def __init__(self, identities: Identities, customers: CustomerService, clock: Clock, issuer: str) -> None:
        self._identities = identities
        self._customers = customers
        self._clock = clock
        self._issuer = issuer  # the stage's identity provider (CRM_JWT_ISSUER)

    def resolve(self, principal: Principal) -> Principal:
        """A customer token of an outside provider, with its subject mapped to the customer id;
        `unlinked` when no customer is linked to it (self-service then answers 403)."""
        if principal.role != "customer" or principal.issuer is None:
            return principal
        customer_id = self._identities.customer_for(principal.issuer, principal.subject)
        if customer_id is None:
            return replace(principal, unlinked=True)
        return Principal(customer_id, "customer")

    # -- staff ------------------------------------------------------------------------------

    def link(self, customer_id: str, subject: str, actor: Actor) -> tuple[Identity, bool]:
        """Link a user of the stage's provider to a customer: True if new, False if it was."""
        if not storable(self._issuer, subject):
            raise ValidationFailed([FieldError("subject", "is too long to be a user's subject")])
        now = self._clock.now()
        identity = Identity(customer_id, self._issuer, subject, now, actor.subject)
        record = _audit("link_identity", customer_id, actor, now, None, subject)
        try:
            created = self._identities.link(identity, record)
        except storage.NotFound:
            raise NotFound(f"No customer has the id {customer_id!r}.") from None
        except storage.IdentityTaken as taken:
            raise Conflict(
                f"This user is linked to customer {taken.owner}: unlink it there first.",
                errors=[FieldError("subject", "is linked to another customer")],
            ) from None
        if not created:
            identity = next(i for i in self._identities.of_customer(customer_id) if i.subject == subject)
        return identity, created

    def unlink(self, customer_id: str, subject: str, actor: Actor) -> None:
        self._customers.get(customer_id)
        now = self._clock.now()
        record = _audit("unlink_identity", customer_id, actor, now, subject, None)
        if not storable(self._issuer, subject) or not self._identities.unlink(
            customer_id, self._issuer, subject, record
        ):
            raise NotFound(f"Customer {customer_id!r} has no linked user {subject!r}.")

    def of_customer(self, customer_id: str) -> list[Identity]:
        self._customers.get(customer_id)
        return self._identities.of_customer(customer_id)

    # -- the Cognito post-confirmation trigger -----------------------------------------------------

    def on_sign_up(self, event: Mapping[str, Any]) -> SignUp:
        """Link a newly confirmed user of the stage's pool to the customer with their verified
        email address, unless that customer already has a sign-in user (the address might
        have been confirmed onto it by someone else: never hand their profile over), or else
        to a new customer made from their attributes, created with the link in one
        transaction. Idempotent: Cognito invokes the trigger again after a timeout, maybe
        while the first invocation still runs, and an identity already linked is left as it
        is; the link's condition decides which invocation makes it, so no retry leaves a
        customer behind without its user."""
        if event.get("triggerSource") != SIGN_UP:
            return SignUp("not_a_sign_up")  # a confirmed password reset runs the trigger too
        issuer = pool_issuer(str(event.get("region", "")), str(event.get("userPoolId", "")))
        if issuer != self._issuer:
            return SignUp("another_pool")  # its users' tokens would not be accepted here
        attributes = event["request"]["userAttributes"]
        subject = str(attributes["sub"])
        email = _verified_email(attributes)

        def attempt() -> SignUp:
            linked = self._identities.customer_for(issuer, subject, consistent=True)
            if linked is not None:
                return SignUp("already_linked", linked)
            owner = self._customer_with(email) if email else None
            now = self._clock.now()
            if owner is not None:
                if self._identities.of_customer(owner, consistent=True):
                    return SignUp("left_unlinked")
                record = _audit("link_identity", owner, SIGN_UP_ACTOR, now, None, subject)
                try:
                    created = self._identities.link(Identity(owner, issuer, subject, now, "sign-up"), record)
                except storage.IdentityTaken as taken:  # a concurrent invocation linked it
                    return SignUp("already_linked", taken.owner)
                return SignUp("linked" if created else "already_linked", owner)

            def with_link(t: TransactWrite, customer: Customer) -> None:
                record = _audit("link_identity", customer.id, SIGN_UP_ACTOR, now, None, subject)
                self._identities.add_link(t, Identity(customer.id, issuer, subject, now, "sign-up"), record)

            customer = self._customers.create(_profile(attributes, email), SIGN_UP_ACTOR, also=with_link)
            return SignUp("created", customer.id)

        # Lost races: the owner was deleted meanwhile (NotFound), the address became a
        # customer's (Conflict) or the user got linked (VersionConflict) meanwhile. Look again.
        return retry_lost_races(
            attempt,
            Conflict("The sign-up kept racing other changes to the same records: retry."),
            attempts=MAX_SIGN_UP_ATTEMPTS,
            lost=(storage.NotFound, Conflict, storage.VersionConflict),
        )

    def _customer_with(self, email: str) -> str | None:
        found = self._customers.find_by_email(email).items
        return found[0].id if found else None


@dataclass(frozen=True)
class SignUp:
    """What the post-confirmation trigger did, for its log."""

    outcome: Literal["not_a_sign_up", "another_pool", "already_linked", "linked", "created", "left_unlinked"]
    customer_id: str | None = None


def _audit(
    action: str, customer_id: str, actor: Actor, at: datetime, before: str | None, after: str | None
) -> AuditEntry:
    return audit.entry(
        "customer", customer_id, action, actor, at, (audit.Change("identity", before, after),), customer_id
    )


def _verified_email(attributes: Mapping[str, Any]) -> str | None:
    """Only a verified address identifies a customer: anyone can type any address."""
    if str(attributes.get("email_verified", "")).lower() != "true" or not attributes.get("email"):
        return None
    try:
        return normalize_email(str(attributes["email"]))
    except ContactError:
        return None


def _profile(attributes: Mapping[str, Any], email: str | None) -> dict:
    given = " ".join(str(attributes.get(k, "")).strip() for k in ("given_name", "family_name")).strip()
    name = str(attributes.get("name") or "").strip() or given or (email or "").split("@")[0] or "Customer"
    try:
        locale = normalize_locale(str(attributes["locale"])) if attributes.get("locale") else DEFAULT_LOCALE
    except ContactError:
        locale = DEFAULT_LOCALE
    fields: dict[str, Any] = {"name": name[:MAX_NAME], "locale": locale}
    if email:
        fields["email"] = email
    return fields
