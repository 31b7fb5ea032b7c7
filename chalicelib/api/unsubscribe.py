"""Unsubscribe links (no Authorization: the signed token is the proof). `GET` shows a page in
the customer's language asking to confirm, and changes nothing; `POST` (the page's button, or
a mail client's one-click request with the body `List-Unsubscribe=One-Click`, RFC 8058)
withdraws the customer's marketing consent. Both answer `Cache-Control: no-store`."""

from __future__ import annotations

from typing import Annotated

from chalice import Blueprint, Response
from pydantic import BaseModel, ConfigDict, Field

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.domain.unsubscribe import confirmation_page

bp = Blueprint(__name__)

HTML = "text/html"
NO_STORE = {"Cache-Control": "no-store"}
FORM = "application/x-www-form-urlencoded"


class UnsubscribeQuery(BaseModel):
    """Other query parameters (a mail client's or a tracker's) are ignored."""

    model_config = ConfigDict(extra="ignore")

    token: Annotated[str, Field(min_length=1, max_length=512)]


def _page(language: str, *, done: bool, token: str) -> Response:
    return Response(
        body=confirmation_page(language, done=done, action_url=f"unsubscribe?token={token}"),
        status_code=200,
        headers={"Content-Type": f"{HTML}; charset=utf-8", **NO_STORE},
    )


@api_route(
    bp,
    "/unsubscribe",
    "GET",
    summary="The page of an unsubscribe link, in the customer's language (changes nothing)",
    roles=(),
    query=UnsubscribeQuery,
    response={HTML: {"type": "string"}},
    errors=(400, 410),
    headers=("Cache-Control",),
    error_headers=NO_STORE,
)
def unsubscribe_page(call: Call):
    _, customer = wiring.unsubscribe_service().read(call.query.token)
    return _page(customer.locale, done=False, token=call.query.token)


@api_route(
    bp,
    "/unsubscribe",
    "POST",
    summary="Unsubscribe: the customer's marketing consent becomes false (one-click, RFC 8058)",
    roles=(),
    query=UnsubscribeQuery,
    body={
        FORM: {
            "type": "object",
            "properties": {"List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}},
        }
    },
    body_required=False,
    response={HTML: {"type": "string"}},
    errors=(400, 410),
    headers=("Cache-Control",),
    error_headers=NO_STORE,
)
def unsubscribe(call: Call):
    customer = wiring.unsubscribe_service().unsubscribe(call.query.token)
    return _page(customer.locale, done=True, token=call.query.token)
