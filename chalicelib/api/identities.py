"""Sign-in users linked to a customer (staff): which Cognito users are this customer. Sign-up
links a user by their verified email address; these routes link, list and unlink by hand."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.responses import json_response
from chalicelib.api.schemas import Out
from chalicelib.domain.clock import to_rfc3339

if TYPE_CHECKING:  # PynamoDB stays out of the import of app.py
    from chalicelib.domain.identities import Identity

bp = Blueprint(__name__)
PATH = "/customers/{customer_id}/identities"


class IdentityOut(Out):
    issuer: str
    subject: str
    linked_at: str
    linked_by: str

    @classmethod
    def of(cls, identity: Identity) -> dict:
        return {
            "issuer": identity.issuer,
            "subject": identity.subject,
            "linked_at": to_rfc3339(identity.linked_at),
            "linked_by": identity.linked_by,
        }


class IdentityList(Out):
    items: list[IdentityOut]


@api_route(
    bp,
    PATH,
    "GET",
    summary="The sign-in users linked to a customer (all of them)",
    response=IdentityList,
    errors=(404,),
)
def list_identities(call: Call, customer_id: str):
    identities = wiring.identity_service().of_customer(customer_id)
    return json_response({"items": [IdentityOut.of(i) for i in identities]})


@api_route(
    bp,
    PATH + "/{subject}",
    "PUT",
    summary="Link a user of the stage's identity provider (its `sub`) to a customer",
    response=IdentityOut,
    status=201,
    errors=(404, 409),
    also=((200, IdentityOut, "The user was already linked to this customer: nothing changed."),),
)
def link_identity(call: Call, customer_id: str, subject: str):
    identity, created = wiring.identity_service().link(customer_id, subject, call.actor)
    return json_response(IdentityOut.of(identity), 201 if created else 200)


@api_route(
    bp,
    PATH + "/{subject}",
    "DELETE",
    summary="Unlink a user from a customer (their token then gets 403 on self-service)",
    status=204,
    errors=(404,),
)
def unlink_identity(call: Call, customer_id: str, subject: str):
    wiring.identity_service().unlink(customer_id, subject, call.actor)
    return json_response(None, 204)
