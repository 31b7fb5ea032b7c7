"""Bulk import routes: request an import (a presigned upload of its file), follow it, read its
errors and its rows' results, cancel it. The work is done by events/imports.py."""

from __future__ import annotations

import json
from urllib.parse import quote

from chalice import Blueprint, Response

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.import_schemas import (
    NDJSON,
    RESULT_LINE_SCHEMA,
    ErrorsQuery,
    ImportCreate,
    ImportCreated,
    ImportOut,
    ResultsQuery,
    RowErrorOut,
    RowErrorPage,
)
from chalicelib.api.responses import json_response, page_response
from chalicelib.domain.clock import to_rfc3339

bp = Blueprint(__name__)


@api_route(
    bp,
    "/imports",
    "POST",
    summary="Import customers or interactions from a CSV or NDJSON file: answers where to upload it",
    body=ImportCreate,
    response=ImportCreated,
    status=201,
    headers=("Location",),
    description=(
        "The import waits for its file: PUT it to `upload.url` (a presigned S3 URL, valid one hour, "
        'up to 1 GiB), e.g. `curl -T customers.csv "<url>"`. Its arrival starts the import in the '
        'background; GET /imports/{import_id} follows it. `match_on` "id" with customers in create '
        "mode is refused (400): a new customer's id is made here."
    ),
)
def create_import(call: Call):
    imp, upload = wiring.import_service().request(call.body.options(), call.actor)
    upload_out = {
        "url": upload.url,
        "method": upload.method,
        "headers": upload.headers,
        "expires_at": to_rfc3339(upload.expires_at),
    }
    return json_response(ImportOut.of(imp) | {"upload": upload_out}, 201, {"Location": f"/imports/{imp.id}"})


@api_route(
    bp,
    "/imports/{import_id}",
    "GET",
    summary="An import: its status and progress",
    response=ImportOut,
    errors=(404,),
)
def get_import(call: Call, import_id: str):
    return json_response(ImportOut.of(wiring.import_service().get(import_id)))


@api_route(
    bp,
    "/imports/{import_id}/errors",
    "GET",
    summary="The rows of an import that failed, in row order, with each bad field",
    query=ErrorsQuery,
    response=RowErrorPage,
    errors=(404,),
)
def list_import_errors(call: Call, import_id: str):
    page = wiring.import_service().errors(import_id, call.query.limit, call.query.cursor)
    return page_response(page, RowErrorOut.of)


@api_route(
    bp,
    "/imports/{import_id}/results",
    "GET",
    summary="What became of each row of an import, one JSON line a row, in row order",
    query=ResultsQuery,
    response={NDJSON: RESULT_LINE_SCHEMA},
    errors=(404,),
    headers=("Link?",),
    description=(
        "NDJSON, up to 4 MB a response (Lambda answers at most 6 MB): a longer result ends its page "
        'with a `Link: <...?cursor=...>; rel="next"` header naming the next page.'
    ),
)
def import_results(call: Call, import_id: str):
    lines, next_cursor = wiring.import_service().results(import_id, call.query.cursor)
    body = "".join(json.dumps(o.result_line(), ensure_ascii=False) + "\n" for o in lines)
    headers = {"Content-Type": NDJSON}
    cursor = next_cursor()
    if cursor:
        headers["Link"] = f'</imports/{import_id}/results?cursor={quote(cursor, safe="")}>; rel="next"'
    return Response(body=body, status_code=200, headers=headers)


@api_route(
    bp,
    "/imports/{import_id}/cancel",
    "POST",
    summary="Cancel an import: chunks not yet written are not; rows written stay",
    response=ImportOut,
    errors=(404, 409),
)
def cancel_import(call: Call, import_id: str):
    return json_response(ImportOut.of(wiring.import_service().cancel(import_id)))
