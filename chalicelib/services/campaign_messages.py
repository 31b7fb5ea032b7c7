"""What a campaign would send one customer now: the skip reason, if any, in the order the
issue fixes, and the message rendered in their language with the product the recommendations
pick. Shared by the preview (nothing sent or counted) and the run's delivery."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.campaign_templates import (
    Rendered,
    format_price,
    greeting_name,
    product_name,
    render,
)
from chalicelib.domain.campaigns import Campaign, SendLog, skip_reason
from chalicelib.domain.customers import Customer
from chalicelib.domain.unsubscribe import UnsubscribeLinks


@dataclass(frozen=True)
class Offer:
    sku: str
    name: str
    price: Decimal
    currency: str

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "name": self.name,
            "price": money.format_money(self.price, self.currency),
            "currency": self.currency,
        }


@dataclass(frozen=True)
class Composed:
    skip_reason: str | None
    message: Rendered | None  # None only for a customer who is gone
    offer: Offer | None
    locale: str | None  # the template language the message is in
    unsubscribe_url: str | None


class Composer:
    def __init__(
        self, pick: Callable[[str, str], object | None], links: Callable[[], UnsubscribeLinks]
    ) -> None:
        """`pick(customer_id, kind)`: RecommendationService.pick."""
        self._pick = pick
        self._links = links

    def compose(
        self,
        campaign: Campaign,
        customer: Customer | None,
        log: SendLog,
        now: datetime,
        *,
        full: bool = False,
    ) -> Composed:
        """The decision and the message. The recommendation is asked for only when no earlier
        reason skips the customer, unless `full` (a preview shows the product anyway)."""
        if customer is None:
            return Composed("erased", None, None, None, None)
        reason = skip_reason(
            profile_found=True,
            marketing_consent=customer.marketing_consent,
            email=customer.email,
            over_cap=log.over(campaign.frequency_cap, now),
            has_product=None,
        )
        offer = self._offer(campaign, customer) if reason is None or full else None
        if reason is None and campaign.recommendation != "none" and offer is None:
            reason = "no_recommendation"
        url = self._links().url(customer.id, campaign.id)
        values = {
            "name": customer.name,
            "preferred_name": greeting_name(customer.name, customer.preferred_name),
            "product.name": offer.name if offer else "",
            "product.price": format_price(offer.price, offer.currency, customer.locale) if offer else "",
            "unsubscribe_url": url,
        }
        message = render(campaign.templates, customer.locale, values)
        return Composed(reason, message, offer, message.language, url)

    def _offer(self, campaign: Campaign, customer: Customer) -> Offer | None:
        if campaign.recommendation == "none":
            return None
        picked = self._pick(customer.id, campaign.recommendation)
        if picked is None:
            return None
        product = picked.product
        return Offer(
            product.sku, product_name(product.names, customer.locale), product.price, product.currency
        )
