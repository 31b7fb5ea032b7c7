"""Confirming a new email address: the link mailed to the address after `PATCH /me` asked for
it. No Authorization: the link itself is the proof (signed, single-use, expiring). `GET` only
says what the link would confirm, since mail scanners and link previews open links without the
person; `POST` (the person's click on the front end's page) applies it. Both answer
`Cache-Control: no-store`, errors too: the answer depends on the moment and names an address."""

from __future__ import annotations

from typing import Literal

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.customer_schemas import CustomerOut
from chalicelib.api.http import Call, api_route
from chalicelib.api.responses import json_response
from chalicelib.api.schemas import Out
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


class PendingConfirmationOut(Out):
    status: Literal["pending", "already_confirmed"]
    email: str


NO_STORE = {"Cache-Control": "no-store"}


@api_route(
    bp,
    "/email-confirmations/{token}",
    "GET",
    summary="What a confirmation link would confirm (the link mailed to the new address; changes nothing)",
    roles=(),
    response=PendingConfirmationOut,
    errors=(400, 410),
    headers=("Cache-Control",),
    error_headers=NO_STORE,
)
def describe_email_confirmation(call: Call, token: str):
    found = wiring.email_change_service().describe(token)
    return json_response({"status": found.status, "email": found.email}, 200, NO_STORE)


@api_route(
    bp,
    "/email-confirmations/{token}",
    "POST",
    summary="Confirm a new email address (the person's click on the mailed link; no Authorization, no body)",
    roles=(),
    response=EmailConfirmationOut,
    errors=(400, 409, 410),
    headers=("Cache-Control",),
    error_headers=NO_STORE,
)
def confirm_email(call: Call, token: str):
    confirmation = wiring.email_change_service().confirm(token)
    return json_response({"status": confirmation.status, "email": confirmation.email}, 200, NO_STORE)
