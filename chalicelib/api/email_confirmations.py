"""Confirming a new email address: the link mailed to the address after `PATCH /me` asked for
it. A mail client or browser opens it with GET, without a token: the link itself is the proof
(signed, single-use, expiring), and opening it again changes nothing."""

from __future__ import annotations

from typing import Literal

from chalice import Blueprint

from chalicelib.api import deps
from chalicelib.api.http import Call, api_route, json_response
from chalicelib.api.schemas import CustomerOut, Out
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.email_change import EmailChange

bp = Blueprint(__name__)


class PendingEmailOut(CustomerOut):
    """`PATCH /me` with a new address: the profile as it is now (the other fields changed, the
    address not yet), and the address waiting for its confirmation."""

    pending_email: str
    pending_email_expires_at: str

    @classmethod
    def of_pending(cls, customer: Customer, change: EmailChange) -> dict:
        return CustomerOut.of(customer) | {
            "pending_email": change.email,
            "pending_email_expires_at": to_rfc3339(change.expires_at),
        }


class EmailConfirmationOut(Out):
    status: Literal["confirmed", "already_confirmed"]
    email: str


@api_route(
    bp,
    "/email-confirmations/{token}",
    "GET",
    summary="Confirm a new email address (the link mailed to it; no Authorization)",
    roles=(),
    response=EmailConfirmationOut,
    errors=(400, 409, 410),
    headers=("Cache-Control",),
)
def confirm_email(call: Call, token: str):
    confirmation = deps.email_change_service().confirm(token)
    return json_response(
        {"status": confirmation.status, "email": confirmation.email}, 200, {"Cache-Control": "no-store"}
    )
