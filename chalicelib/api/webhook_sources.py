"""Inbound webhook routes: staff register sources and read their deliveries; a source posts
its deliveries to POST /webhooks/{source_id}, signed (Standard Webhooks v1) rather than with a
token. The work runs from the queue (events/webhooks_in.py), never in the request."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.requests import check_json_media_type
from chalicelib.api.responses import JSON, json_response, page_response
from chalicelib.api.schemas import PageQuery
from chalicelib.api.webhook_schemas_in import (
    InboundDeliveryOut,
    InboundDeliveryPage,
    InboundDeliveryQuery,
    WebhookPayload,
    WebhookSourceCreate,
    WebhookSourceOut,
    WebhookSourcePage,
    WebhookSourceWithSecretOut,
    validate_payload,
)

bp = Blueprint(__name__)


def _source_response(source, status: int = 200, extra: dict | None = None, *, secret: bool = False):
    out = WebhookSourceWithSecretOut if secret else WebhookSourceOut
    headers = {"ETag": etag(source.version), **(extra or {})}
    return json_response(out.of(source, wiring.clock.now()), status, headers)


@api_route(
    bp,
    "/webhook-sources",
    "POST",
    summary="Register a source of inbound webhooks (orders, tickets or interactions); its secret, once",
    body=WebhookSourceCreate,
    response=WebhookSourceWithSecretOut,
    status=201,
    headers=("Location", "ETag"),
)
def create_webhook_source(call: Call):
    source = wiring.webhook_source_service().create(call.body.name, call.body.kind)
    return _source_response(source, 201, {"Location": f"/webhook-sources/{source.id}"}, secret=True)


@api_route(
    bp,
    "/webhook-sources",
    "GET",
    summary="List the webhook sources, oldest first (without their secrets)",
    query=PageQuery,
    response=WebhookSourcePage,
)
def list_webhook_sources(call: Call):
    page = wiring.webhook_source_service().list(call.query.limit, call.query.cursor)
    now = wiring.clock.now()
    return page_response(page, lambda source: WebhookSourceOut.of(source, now))


@api_route(
    bp,
    "/webhook-sources/{source_id}",
    "GET",
    summary="Read a webhook source (without its secret)",
    response=WebhookSourceOut,
    errors=(404,),
    headers=("ETag",),
)
def get_webhook_source(call: Call, source_id: str):
    return _source_response(wiring.webhook_source_service().get(source_id))


@api_route(
    bp,
    "/webhook-sources/{source_id}/rotate-secret",
    "POST",
    summary="A new signing secret, shown once; the previous ones keep verifying for 24 hours",
    response=WebhookSourceWithSecretOut,
    errors=(404, 412),
    headers=("ETag",),
    description="With `If-Match` (the source's `ETag`), only at that version (else 412).",
)
def rotate_webhook_secret(call: Call, source_id: str):
    source = wiring.webhook_source_service().rotate_secret(source_id, if_match(call.headers))
    return _source_response(source, secret=True)


@api_route(
    bp,
    "/webhook-sources/{source_id}",
    "DELETE",
    summary="Delete a webhook source: its deliveries are refused (404) from now on",
    status=204,
    errors=(404, 412),
    description="With `If-Match` (the source's `ETag`), only at that version (else 412). What the "
    "source left (its deliveries and the order, refund and ticket ids it claimed) is deleted in the "
    "background. A 503 (with `Retry-After`) means the source is deleted but that work could not be "
    "queued: send the DELETE again, which is 204 until what the source left is gone (then 404).",
)
def delete_webhook_source(call: Call, source_id: str):
    wiring.webhook_source_service().delete(source_id, if_match(call.headers))
    return json_response(None, 204)


@api_route(
    bp,
    "/webhook-sources/{source_id}/deliveries",
    "GET",
    summary="A source's deliveries, newest first: whether each was processed, and if not, why",
    query=InboundDeliveryQuery,
    response=InboundDeliveryPage,
    errors=(404,),
    description="`received` is a delivery stored and queued but not yet processed; each ends "
    "`processed` (with `customer_id` and `interaction_id`) or `failed` (with `error`). Deliveries "
    "are kept 30 days.",
)
def list_webhook_deliveries(call: Call, source_id: str):
    q = call.query
    page = wiring.webhook_source_service().deliveries(source_id, q.status, q.limit, q.cursor)
    return page_response(page, InboundDeliveryOut.of)


@api_route(
    bp,
    "/webhooks/{source_id}",
    "POST",
    summary="Receive a source's webhook (signed, no token): stored and queued, answered 202",
    roles=(),
    body={JSON: WebhookPayload},
    response=InboundDeliveryOut,
    status=202,
    errors=(401, 404, 413, 415, 422, 503),
    request_headers=(
        {
            "name": "webhook-id",
            "required": True,
            "description": "The delivery's id: the same id again is the same delivery (30 days).",
            "schema": {"type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[!-~]+$"},
        },
        {
            "name": "webhook-timestamp",
            "required": True,
            "description": "When it was signed, integer Unix seconds.",
            "schema": {"type": "string", "pattern": "^[0-9]{1,12}$"},
        },
        {
            "name": "webhook-signature",
            "required": True,
            "description": "Space-separated `v1,<base64 HMAC-SHA256>` signatures (one must match).",
            "schema": {"type": "string", "minLength": 1},
        },
    ),
    description="Authenticated by its Standard Webhooks v1 signature: `webhook-id`, "
    "`webhook-timestamp` (Unix seconds, within CRM_WEBHOOK_TOLERANCE_S of now) and "
    "`webhook-signature` (`v1,<base64 HMAC-SHA256 of <id>.<timestamp>.<raw body>>`, "
    "space-separated, keyed by one of the source's secrets). Checked in this order: an unknown "
    "source is 404, a bad signature 401 naming the header, a body over 256 KB 413, one not sent as "
    "application/json 415, and one that "
    "is not JSON or no payload of the source's kind 422 naming the fields (and is stored "
    "nowhere). The same `webhook-id` again, for 30 days, is 202 with the delivery as it is, and "
    "nothing is done twice (a `failed` delivery stays failed: send it again under a new "
    "`webhook-id`). A 503 (with `Retry-After`) means the delivery was stored but could not be "
    "queued: send it again with the same `webhook-id`.",
)
def receive_webhook(call: Call, source_id: str):
    def validate(kind: str, body: bytes, now):
        check_json_media_type(call.headers)  # after the signature: a stranger learns nothing
        return validate_payload(kind, body, now)

    service = wiring.webhook_source_service()
    delivery = service.receive(source_id, call.headers, call.raw_body, validate)
    return json_response(InboundDeliveryOut.of(delivery), 202)
