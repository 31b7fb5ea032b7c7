"""Merges of duplicate customers: asked for under the survivor, followed at /merges/{id}."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.merge_schemas import MergeIn, MergeOut, MergePreviewOut
from chalicelib.api.responses import json_response

bp = Blueprint(__name__)

MERGE = (
    "Merges the customer `merge_id` into this one (the survivor). The profiles merge at once (see "
    "`sources`); interactions, cases, the audit trail and the rest move in the background, followed "
    "at `Location`. The merged id then answers 308 to GET (to the survivor's path) and 409 to writes, "
    "both with `merged_into`. 409: the same id, an id merged already, an erased customer, a customer "
    "a running merge involves (either side), customers recorded as different people (unless "
    "`force`), or a result over a profile's limits (5 secondary addresses or numbers, 20 tags, 50 "
    "attributes). 404: either customer unknown or deleted (`merge_id` named for that one)."
)


@api_route(
    bp,
    "/customers/{customer_id}/merge",
    "POST",
    summary="Merge a duplicate customer into this one (or preview it: dry_run)",
    body=MergeIn,
    response=MergeOut,
    status=202,
    errors=(404, 409, 422),
    headers=("Location",),
    also=((200, MergePreviewOut, "dry_run: the survivor as the merge would leave it; nothing changed.", ()),),
    description=MERGE,
)
def merge_customers(call: Call, customer_id: str):
    b = call.body
    service = wiring.merge_service()
    if b.dry_run:
        return json_response(
            MergePreviewOut.of(service.preview(customer_id, b.merge_id, b.fields, force=b.force))
        )
    merge = service.start(customer_id, b.merge_id, b.fields, call.actor, force=b.force)
    return json_response(MergeOut.of(merge), 202, {"Location": f"/merges/{merge.id}"})


@api_route(
    bp, "/merges/{merge_id}", "GET", summary="A merge and its progress", response=MergeOut, errors=(404,)
)
def get_merge(call: Call, merge_id: str):
    return json_response(MergeOut.of(wiring.merge_service().get(merge_id)))
