"""Outbound webhook routes (staff): subscriptions, their deliveries, retries and replays. The
deliveries are sent by the consumers (events/webhooks_out.py), never in a request."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery
from chalicelib.api.webhook_subscription_schemas import (
    DeliveryOut,
    DeliveryPage,
    DeliveryQuery,
    ReplayIn,
    ReplayOut,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionPage,
    SubscriptionPatch,
    SubscriptionWithSecretOut,
)

bp = Blueprint(__name__)
PATH = "/webhook-subscriptions"


def _subscription_response(subscription, status: int = 200, extra: dict | None = None, out=SubscriptionOut):
    headers = {"ETag": etag(subscription.version), **(extra or {})}
    return json_response(out.of(subscription), status, headers)


@api_route(
    bp,
    PATH,
    "POST",
    summary="Subscribe a URL to events: its signing secret is in this response only",
    body=SubscriptionCreate,
    response=SubscriptionWithSecretOut,
    status=201,
    errors=(409, 422),
    headers=("Location", "ETag"),
    description="422 names `url` when the URL is refused (not https, or its host is or resolves to a "
    "non-public address); 409 once there are 100 subscriptions.",
)
def create_webhook_subscription(call: Call):
    subscription = wiring.webhook_subscription_service().create(call.body.fields())
    location = {"Location": f"{PATH}/{subscription.id}"}
    return _subscription_response(subscription, 201, location, SubscriptionWithSecretOut)


@api_route(
    bp,
    PATH,
    "GET",
    summary="List the webhook subscriptions, oldest first",
    query=PageQuery,
    response=SubscriptionPage,
)
def list_webhook_subscriptions(call: Call):
    page = wiring.webhook_subscription_service().list(call.query.limit, call.query.cursor)
    return page_response(page, SubscriptionOut.of)


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}",
    "GET",
    summary="Read a webhook subscription (without its secret)",
    response=SubscriptionOut,
    errors=(404,),
    headers=("ETag",),
)
def get_webhook_subscription(call: Call, subscription_id: str):
    return _subscription_response(wiring.webhook_subscription_service().get(subscription_id))


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}",
    "PATCH",
    summary="Change a webhook subscription's URL, events, description, or enable or disable it",
    body=SubscriptionPatch,
    response=SubscriptionOut,
    errors=(404, 412, 422),
    headers=("ETag",),
)
def update_webhook_subscription(call: Call, subscription_id: str):
    service = wiring.webhook_subscription_service()
    return _subscription_response(
        service.update(subscription_id, call.body.changes(), if_match(call.headers))
    )


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}",
    "DELETE",
    summary="Delete a webhook subscription (its queued deliveries are dropped)",
    status=204,
    errors=(404, 412),
)
def delete_webhook_subscription(call: Call, subscription_id: str):
    wiring.webhook_subscription_service().delete(subscription_id, if_match(call.headers))
    return json_response(None, 204)


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}/rotate-secret",
    "POST",
    summary="A new signing secret (in this response only); the old ones sign too for 24 hours",
    response=SubscriptionWithSecretOut,
    errors=(404,),
    headers=("ETag",),
)
def rotate_webhook_subscription_secret(call: Call, subscription_id: str):
    subscription = wiring.webhook_subscription_service().rotate_secret(subscription_id)
    return _subscription_response(subscription, out=SubscriptionWithSecretOut)


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}/deliveries",
    "GET",
    summary="A subscription's deliveries, newest first, with their attempts; ?status= filters",
    query=DeliveryQuery,
    response=DeliveryPage,
    errors=(404,),
)
def list_subscription_deliveries(call: Call, subscription_id: str):
    query = call.query
    page = wiring.webhook_subscription_service().deliveries(
        subscription_id, query.status, query.limit, query.cursor
    )
    return page_response(page, DeliveryOut.of)


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}/deliveries/{{delivery_id}}/retry",
    "POST",
    summary="Send a failed or skipped delivery again (a new round of attempts)",
    response=DeliveryOut,
    status=202,
    errors=(404, 409),
    description="409 for a delivery that is pending or succeeded, or while the subscription is disabled.",
)
def retry_webhook_delivery(call: Call, subscription_id: str, delivery_id: str):
    delivery = wiring.webhook_subscription_service().retry(subscription_id, delivery_id)
    return json_response(DeliveryOut.of(delivery), 202)


@api_route(
    bp,
    f"{PATH}/{{subscription_id}}/replay",
    "POST",
    summary="Send again, in order, the deliveries skipped since a moment (while it was disabled)",
    body=ReplayIn,
    response=ReplayOut,
    status=202,
    errors=(404, 409),
    description="409 while the subscription is disabled: enable it first.",
)
def replay_webhook_deliveries(call: Call, subscription_id: str):
    replay = wiring.webhook_subscription_service().replay(subscription_id, call.body.since)
    return json_response(ReplayOut.of(replay), 202)
