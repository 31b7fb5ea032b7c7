"""Campaign routes (staff): define campaigns, preview them for a customer, start runs and read
their results. Runs are done by the consumers (events/campaigns.py), never in a request."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.campaign_schemas import (
    CampaignCreate,
    CampaignOut,
    CampaignPage,
    CampaignPatch,
    PreviewIn,
    PreviewOut,
    RecipientOut,
    RecipientPage,
    RecipientQuery,
    RunIn,
    RunOut,
    RunPage,
)
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery

bp = Blueprint(__name__)


def _campaign_response(campaign, status: int = 200, extra: dict | None = None):
    return json_response(CampaignOut.of(campaign), status, {"ETag": etag(campaign.version), **(extra or {})})


@api_route(
    bp,
    "/campaigns",
    "POST",
    summary="Define a campaign: a segment, a message template per language, a schedule and a cap",
    body=CampaignCreate,
    response=CampaignOut,
    status=201,
    errors=(422,),
    headers=("Location", "ETag"),
)
def create_campaign(call: Call):
    campaign = wiring.campaign_service().create(call.body.fields())
    return _campaign_response(campaign, 201, {"Location": f"/campaigns/{campaign.id}"})


@api_route(
    bp,
    "/campaigns",
    "GET",
    summary="List the campaigns, oldest first",
    query=PageQuery,
    response=CampaignPage,
)
def list_campaigns(call: Call):
    page = wiring.campaign_service().list(call.query.limit, call.query.cursor)
    return page_response(page, CampaignOut.of)


@api_route(
    bp,
    "/campaigns/{campaign_id}",
    "GET",
    summary="Read a campaign",
    response=CampaignOut,
    errors=(404,),
    headers=("ETag",),
)
def get_campaign(call: Call, campaign_id: str):
    return _campaign_response(wiring.campaign_service().get(campaign_id))


@api_route(
    bp,
    "/campaigns/{campaign_id}",
    "PATCH",
    summary="Change a campaign (activate, pause or finish it, change its schedule or templates)",
    body=CampaignPatch,
    response=CampaignOut,
    errors=(404, 412, 422),
    headers=("ETag",),
)
def update_campaign(call: Call, campaign_id: str):
    campaign = wiring.campaign_service().update(campaign_id, call.body.changes(), if_match(call.headers))
    return _campaign_response(campaign)


@api_route(
    bp,
    "/campaigns/{campaign_id}",
    "DELETE",
    summary="Delete a campaign (only while draft or paused: else 409)",
    status=204,
    errors=(404, 409, 412),
)
def delete_campaign(call: Call, campaign_id: str):
    wiring.campaign_service().delete(campaign_id, if_match(call.headers))
    return json_response(None, 204)


@api_route(
    bp,
    "/campaigns/{campaign_id}/preview",
    "POST",
    summary="Exactly what a customer would get from the campaign now (nothing is sent or counted)",
    body=PreviewIn,
    response=PreviewOut,
    errors=(404,),
)
def preview_campaign(call: Call, campaign_id: str):
    composed = wiring.campaign_service().preview(campaign_id, call.body.customer_id)
    return json_response(PreviewOut.of(composed))


@api_route(
    bp,
    "/campaigns/{campaign_id}/runs",
    "POST",
    summary="Start a run of an active campaign now (409 otherwise); the consumers send it",
    body=RunIn,
    body_required=False,
    response=RunOut,
    status=202,
    errors=(404, 409),
    headers=("Location",),
)
def start_run(call: Call, campaign_id: str):
    run = wiring.campaign_service().start_run(campaign_id)
    return json_response(RunOut.of(run), 202, {"Location": f"/campaigns/{campaign_id}/runs/{run.id}"})


@api_route(
    bp,
    "/campaigns/{campaign_id}/runs",
    "GET",
    summary="List a campaign's runs, newest first",
    query=PageQuery,
    response=RunPage,
    errors=(404,),
)
def list_runs(call: Call, campaign_id: str):
    page = wiring.campaign_service().runs(campaign_id, call.query.limit, call.query.cursor)
    return page_response(page, RunOut.of)


@api_route(
    bp,
    "/campaigns/{campaign_id}/runs/{run_id}",
    "GET",
    summary="Read a run: its status and counts (targeted = sent + skipped + failed once completed)",
    response=RunOut,
    errors=(404,),
)
def get_run(call: Call, campaign_id: str, run_id: str):
    return json_response(RunOut.of(wiring.campaign_service().run(campaign_id, run_id)))


@api_route(
    bp,
    "/campaigns/{campaign_id}/runs/{run_id}/recipients",
    "GET",
    summary="A run's per-customer decisions, by outcome (sent, skipped, failed), shard by shard",
    query=RecipientQuery,
    response=RecipientPage,
    errors=(404,),
)
def list_recipients(call: Call, campaign_id: str, run_id: str):
    query = call.query
    page = wiring.campaign_service().recipients(campaign_id, run_id, query.outcome, query.limit, query.cursor)
    return page_response(page, RecipientOut.of)
