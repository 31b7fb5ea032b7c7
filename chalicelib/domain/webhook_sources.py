"""Inbound webhook sources (a shop, a support desk, a marketing tool), the deliveries they send
and the guards that make an external order or ticket one interaction however often it comes.

A source has a kind, which says what its deliveries may hold (domain/webhook_payloads.py), and
signing secrets (domain/webhook_secrets.py). A delivery is stored under its `webhook-id`: the
same id again is the same delivery. It is `received` until the consumer has made it an
interaction (`processed`) or given up on it (`failed`, with a reason for the integrator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from chalicelib.domain.webhook_secrets import Secret, newest, valid

KINDS = ("orders", "tickets", "interactions")
RECEIVED, PROCESSED, FAILED = "received", "processed", "failed"
STATUSES = (RECEIVED, PROCESSED, FAILED)
# Longer than the 24 hours a sender may resend a delivery within (Standard Webhooks' retries
# span about a day and a half): a delivery, and with it its webhook-id, is kept this long.
DELIVERY_LIFETIME = timedelta(days=30)
MAX_BODY_BYTES = 256 * 1024
MAX_NAME_LENGTH = 100

# An order and a refund are claimed under keys of their own: a refund's own order_id may be
# the number of a later order of the shop's.
ORDER_GUARD, REFUND_GUARD, TICKET_GUARD = "ORDER#", "REFUND#", "TICKET#"


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    kind: str
    secrets: tuple[Secret, ...]
    created_at: datetime
    updated_at: datetime
    version: int = 0

    def verifying(self, now: datetime) -> tuple[str, ...]:
        """The secrets a delivery may be signed with at `now`, newest first."""
        return valid(self.secrets, now)

    @property
    def secret(self) -> str:
        """The newest secret: the one shown when it is made."""
        return newest(self.secrets)

    def previous_secret_expires_at(self, now: datetime) -> datetime | None:
        """While a rotation's older secrets still verify: when the last of them stops."""
        ends = [s.expires_at for s in self.secrets if s.expires_at is not None and s.valid_at(now)]
        return max(ends) if ends else None


@dataclass(frozen=True)
class Delivery:
    source_id: str
    id: str  # the sender's webhook-id
    received_at: datetime
    type: str
    status: str = RECEIVED
    # The validated body, kept only until the delivery is final.
    payload: dict[str, Any] | None = field(default=None, compare=False)
    customer_id: str | None = None
    interaction_id: str | None = None
    error: str | None = None
    processed_at: datetime | None = None
    # While it waits to be processed: the existing customer its payload names (by customer_id,
    # or the owner of its email address), so that their erasure finds and strips it.
    named_customer_id: str | None = field(default=None, compare=False)

    @property
    def final(self) -> bool:
        return self.status != RECEIVED

    @property
    def stripped(self) -> bool:
        """Received, but its payload is gone: its customer was erased while it waited."""
        return not self.final and self.payload is None

    @property
    def expires_at(self) -> datetime:
        return self.received_at + DELIVERY_LIFETIME


@dataclass(frozen=True)
class Guard:
    """An external id of a source (`ORDER#<order id>`, `REFUND#<order id>`, `TICKET#<ticket
    id>`) claimed for one interaction: claimed before the interaction is written with that id,
    so every delivery of the same order writes, or finds, that one interaction."""

    source_id: str
    key: str
    customer_id: str
    interaction_id: str
    claimed_at: datetime


def order_guard(order_id: str) -> str:
    return ORDER_GUARD + order_id


def refund_guard(order_id: str) -> str:
    return REFUND_GUARD + order_id


def ticket_guard(ticket_id: str) -> str:
    return TICKET_GUARD + ticket_id
