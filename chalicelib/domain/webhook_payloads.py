"""What an inbound webhook's payload asks for, read from the validated JSON a delivery keeps
(api/webhook_schemas_in.py validates it; the same rules as the API's own bodies).

    orders        order.created    → a purchase          order.refunded → a return of a purchase
    tickets       ticket.created   → a complaint (and so a case)
    interactions  interaction.created → the interaction, as POST /customers/{id}/interactions takes it
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.domain.clock import parse_optional_rfc3339
from chalicelib.domain.interactions import LineItem

ORDER_CREATED, ORDER_REFUNDED = "order.created", "order.refunded"
TICKET_CREATED = "ticket.created"
INTERACTION_CREATED = "interaction.created"
TYPES_OF_KIND = {
    "orders": (ORDER_CREATED, ORDER_REFUNDED),
    "tickets": (TICKET_CREATED,),
    "interactions": (INTERACTION_CREATED,),
}
# A ticket's complaint when the payload does not say: a support desk's tickets mostly come by
# email, and a complaint without a stated severity is handled at the middle SLA.
DEFAULT_TICKET_CHANNEL = "email"
DEFAULT_TICKET_SEVERITY = "medium"


@dataclass(frozen=True)
class Contact:
    """Who the payload is about: found by email (case-insensitively), else created."""

    email: str
    name: str | None = None
    phone: str | None = None
    locale: str | None = None

    def profile(self) -> dict[str, Any]:
        """A new customer's fields: without marketing consent (a shop's order is no consent
        to marketing); named by the payload, else by the email address's local part."""
        fields: dict[str, Any] = {
            "name": self.name or self.email.split("@")[0],
            "email": self.email,
            "marketing_consent": False,
        }
        if self.phone:
            fields["phone"] = self.phone
        if self.locale:
            fields["locale"] = self.locale
        return fields


@dataclass(frozen=True)
class Order:
    order_id: str
    contact: Contact
    currency: str
    items: tuple[LineItem, ...]
    occurred_at: datetime | None = None
    refund_of: str | None = None  # set on a refund: the order_id of the order it refunds

    def fields(self) -> dict[str, Any]:
        """The purchase's (or the return's) fields for InteractionService.record: a shop's
        order is on the web."""
        return {
            "type": "return" if self.refund_of else "purchase",
            "channel": "web",
            "currency": self.currency,
            "items": [asdict(item) for item in self.items],
            "occurred_at": self.occurred_at,
            "order_id": self.order_id,
        }


@dataclass(frozen=True)
class Ticket:
    ticket_id: str
    contact: Contact
    subject: str
    severity: str = DEFAULT_TICKET_SEVERITY
    channel: str = DEFAULT_TICKET_CHANNEL

    def fields(self) -> dict[str, Any]:
        return {
            "type": "complaint",
            "channel": self.channel,
            "severity": self.severity,
            "subject": self.subject,
        }


@dataclass(frozen=True)
class Posted:
    """An interaction as POST /customers/{id}/interactions takes it, for a customer named by
    id or by contact details."""

    fields: dict[str, Any] = field(default_factory=dict)
    contact: Contact | None = None
    customer_id: str | None = None


def _contact(data: Mapping[str, Any]) -> Contact:
    return Contact(data["email"], data.get("name"), data.get("phone"), data.get("locale"))


def _items(items: list[Mapping[str, Any]]) -> tuple[LineItem, ...]:
    return tuple(
        LineItem(i["sku"], i["name"], int(i["quantity"]), Decimal(str(i["unit_price"]))) for i in items
    )


def read(payload: Mapping[str, Any]) -> Order | Ticket | Posted:
    """The work a stored payload asks for (KeyError or ValueError for one that is not a
    validated payload)."""
    kind, data = payload["type"], payload["data"]
    if kind in (ORDER_CREATED, ORDER_REFUNDED):
        return Order(
            order_id=data["order_id"],
            contact=_contact(data["customer"]),
            currency=data["currency"],
            items=_items(data["items"]),
            occurred_at=parse_optional_rfc3339(data.get("occurred_at")),
            refund_of=data.get("refund_of") if kind == ORDER_REFUNDED else None,
        )
    if kind == TICKET_CREATED:
        return Ticket(
            ticket_id=data["ticket_id"],
            contact=_contact(data["customer"]),
            subject=data["subject"],
            severity=data.get("severity") or DEFAULT_TICKET_SEVERITY,
            channel=data.get("channel") or DEFAULT_TICKET_CHANNEL,
        )
    if kind == INTERACTION_CREATED:
        fields = {k: v for k, v in data.items() if k not in ("customer", "customer_id")}
        if "items" in fields:
            fields["items"] = [asdict(item) for item in _items(fields["items"])]
        if "occurred_at" in fields:
            fields["occurred_at"] = parse_optional_rfc3339(fields["occurred_at"])
        contact = _contact(data["customer"]) if data.get("customer") else None
        return Posted(fields, contact, data.get("customer_id"))
    raise ValueError(f"not a webhook payload type: {kind!r}")
