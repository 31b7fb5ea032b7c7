"""Segment routes (staff): define segments and read their members. Membership is kept by the
consumers (events/segments.py), never computed here."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery
from chalicelib.api.segment_schemas import (
    MemberOut,
    MemberPage,
    SegmentCreate,
    SegmentOut,
    SegmentPage,
    SegmentPatch,
)

bp = Blueprint(__name__)


def _segment_response(segment, status: int = 200, extra: dict | None = None):
    return json_response(SegmentOut.of(segment), status, {"ETag": etag(segment.version), **(extra or {})})


@api_route(
    bp,
    "/segments",
    "POST",
    summary="Define a segment; its membership is built in the background (status building, then ready)",
    body=SegmentCreate,
    response=SegmentOut,
    status=201,
    headers=("Location", "ETag"),
)
def create_segment(call: Call):
    body = call.body
    segment = wiring.segment_service().create(body.name, body.description, body.rules.to_rules())
    return _segment_response(segment, 201, {"Location": f"/segments/{segment.id}"})


@api_route(
    bp, "/segments", "GET", summary="List the segments, oldest first", query=PageQuery, response=SegmentPage
)
def list_segments(call: Call):
    page = wiring.segment_service().list(call.query.limit, call.query.cursor)
    return page_response(page, SegmentOut.of)


@api_route(
    bp,
    "/segments/{segment_id}",
    "GET",
    summary="Read a segment",
    response=SegmentOut,
    errors=(404,),
    headers=("ETag",),
)
def get_segment(call: Call, segment_id: str):
    return _segment_response(wiring.segment_service().get(segment_id))


@api_route(
    bp,
    "/segments/{segment_id}",
    "PATCH",
    summary="Change a segment's name, description or rules (new rules rebuild its membership)",
    body=SegmentPatch,
    response=SegmentOut,
    errors=(404, 409, 412),
    headers=("ETag",),
)
def update_segment(call: Call, segment_id: str):
    segment = wiring.segment_service().update(segment_id, call.body.changes(), if_match(call.headers))
    return _segment_response(segment)


@api_route(
    bp,
    "/segments/{segment_id}",
    "DELETE",
    summary="Delete a segment (its members leave it)",
    status=204,
    errors=(404, 412),
)
def delete_segment(call: Call, segment_id: str):
    wiring.segment_service().delete(segment_id, if_match(call.headers))
    return json_response(None, 204)


@api_route(
    bp,
    "/segments/{segment_id}/members",
    "GET",
    summary="List a segment's members (one Query and one BatchGetItem a page)",
    query=PageQuery,
    response=MemberPage,
    errors=(404,),
)
def list_members(call: Call, segment_id: str):
    page = wiring.segment_service().members(segment_id, call.query.limit, call.query.cursor)
    return page_response(page, MemberOut.of)
