"""One-click unsubscribe from the links in campaign messages (RFC 8058): the token is signed
and names the customer and the campaign; no login. Reading a link changes nothing (mail
scanners open links); a POST withdraws the customer's marketing consent, audited as done by
the subject "unsubscribe"."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.domain.audit import Actor
from chalicelib.domain.customers import Customer
from chalicelib.domain.unsubscribe import BadToken, UnsubscribeClaims, UnsubscribeLinks
from chalicelib.errors import FieldError, Gone, ValidationFailed
from chalicelib.services.ports import ProfileReader

ACTOR = Actor("unsubscribe", "customer", "POST /unsubscribe")


class UnsubscribeService:
    def __init__(
        self,
        links: UnsubscribeLinks,
        customers: ProfileReader,
        update: Callable[[str, dict, int | None, Actor], Customer],
    ) -> None:
        """`update`: CustomerService.update."""
        self._links = links
        self._customers = customers
        self._update = update

    def read(self, token: str) -> tuple[UnsubscribeClaims, Customer]:
        """The link's customer (400 for a token we did not sign, 410 once they are gone)."""
        try:
            claims = self._links.read(token)
        except BadToken:
            raise ValidationFailed(
                [FieldError("token", "is not an unsubscribe link of ours (edited or incomplete)")]
            ) from None
        customer = self._customers.get(claims.customer_id, consistent=True)
        if customer is None:
            raise Gone("The customer this link was sent to has been deleted or erased.")
        return claims, customer

    def unsubscribe(self, token: str) -> Customer:
        claims, _ = self.read(token)
        return self._update(claims.customer_id, {"marketing_consent": False}, None, ACTOR)
