"""The OpenAPI 3.1 document, written from the route registry and its pydantic models."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from chalice import Blueprint
from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from chalicelib.api.http import ROUTES, Call, RouteSpec, api_route
from chalicelib.api.responses import JSON, PROBLEM_JSON, json_response
from chalicelib.api.schemas import Health, Problem

bp = Blueprint(__name__)

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")

# Every response header a route may name (`api_route(headers=...)`), and the ones the
# plumbing adds; a route naming a header missing here fails when the document is written.
HEADERS: dict[str, dict[str, Any]] = {
    "ETag": {
        "description": 'The version of the resource, `"v<version>"`: send it back in `If-Match`.',
        "schema": {"type": "string", "pattern": '^"v[0-9]+"$', "examples": ['"v3"']},
    },
    "Location": {
        "description": "The path of the created resource; with 202, of the job to follow.",
        "schema": {"type": "string", "format": "uri-reference"},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response to an earlier request with the same "
        "`Idempotency-Key`, replayed: nothing ran again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying: a request with this `Idempotency-Key` is "
        "still being processed (409), the limit of such requests was reached (429), or other "
        "changes to the same records kept winning (503).",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "WWW-Authenticate": {
        "description": 'The authentication scheme to use: `Bearer realm="crm"`.',
        "schema": {"type": "string", "pattern": "^Bearer"},
    },
    "Content-Security-Policy": {
        "description": "What the page may load and where it may connect: this origin only.",
        "schema": {"type": "string"},
    },
    "Cache-Control": {
        "description": "How long the response may be cached (`no-store`: not at all).",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": 'The next page of a list whose pages are not JSON: `<path?cursor=...>; rel="next"`.',
        "schema": {"type": "string", "pattern": '^<[^>]+>; rel="next"$'},
    },
}

MERGED_LOCATION = "The same path (and query) under the customer the id was merged into."
ERRORS: dict[int, str] = {
    308: "The customer id was merged into another (`merged_into`): the same request at `Location`.",
    400: "The request is invalid: malformed JSON, unknown or bad fields (each one named in `errors`), "
    "bad query parameters or cursor, a malformed `If-Match` or `Idempotency-Key`, a body sent to a "
    "route that takes none (field `body`).",
    401: "No token, or one that is malformed, badly signed, expired, or for another issuer or audience.",
    403: "The token's role may not use this route.",
    404: "No such resource.",
    409: "Conflicts with the current state (a used email, a change racing another one, a status "
    "transition not allowed, an `Idempotency-Key` still in progress, a write to a customer id that "
    "was merged into another: `merged_into`).",
    410: "This customer's personal data was erased; for a confirmation link: it expired, a newer "
    "change replaced it, or the address was set otherwise since.",
    412: "`If-Match` names a version that is no longer current.",
    413: "The body is over the size limit; or an inline export over 5 MB (type `export-too-large`): "
    "ask for it as a job, with the route the detail names.",
    415: "The body is not sent as `application/json`.",
    422: "Well-formed but not possible (e.g. a return of another customer's purchase, an "
    "`Idempotency-Key` reused with another body, an item that would exceed the storage limit).",
    429: "Asked too often (e.g. changes of email address): nothing was done; retry after "
    "`Retry-After` seconds.",
    500: "The server failed; never the result of client input. Retrying may help.",
    503: "Other changes to the same records kept coming first (DynamoDB TransactionConflict, "
    "already retried): nothing was written; retry after `Retry-After` seconds.",
}

# A route without a token that answers 401 (an inbound webhook) is authenticated by the
# signature of its body: the problem names the header, and the challenge is that scheme's.
SIGNATURE_401 = (
    "The webhook's signature headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`) are "
    "missing or malformed, its timestamp is too far from now, or no signature matches a secret of "
    "the source: `errors` names the header."
)
SIGNATURE_CHALLENGE = {
    "description": "The scheme to use: `Webhook-Signature` (Standard Webhooks v1 signatures).",
    "schema": {"type": "string", "pattern": "^Webhook-Signature"},
}

# Responses of an authenticated POST that run the view may be replayed for its Idempotency-Key;
# these statuses are answered before it runs.
_NEVER_REPLAYED = {401, 403, 413, 415, 500, 503}


class _Generator(GenerateJsonSchema):
    """pydantic's generator, without `default: null` on a field whose schema does not admit
    null: a PATCH field that may be left out but not cleared (`name`) has no default, it is
    just not required. A default the field's own schema rejects makes the document invalid."""

    def default_schema(self, schema):
        json_schema = super().default_schema(schema)
        if "default" in json_schema and json_schema["default"] is None and not _admits_null(json_schema):
            del json_schema["default"]
        return json_schema


def _admits_null(schema: Mapping[str, Any]) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_admits_null(branch) for key in ("anyOf", "oneOf") for branch in schema.get(key, ()))


def _add_components(found: Mapping[str, Any], components: dict) -> None:
    for name, schema in found.items():
        if components.setdefault(name, schema) != schema:
            # Two models of one name would silently share (or overwrite) one schema.
            raise ValueError(f"Two different schemas are named {name!r}: rename one of the models")


def _schema(model: Any, components: dict) -> dict:
    if isinstance(model, Mapping):  # a raw JSON Schema
        return dict(model)
    if isinstance(model, TypeAdapter):
        schema = model.json_schema(ref_template=REF, schema_generator=_Generator)
    else:
        schema = model.model_json_schema(ref_template=REF, schema_generator=_Generator)
    _add_components(schema.pop("$defs", {}), components)
    if isinstance(model, type) and issubclass(model, BaseModel):
        _add_components({model.__name__: schema}, components)
        return {"$ref": REF.format(model=model.__name__)}
    return schema


def _content(response: Any, components: dict) -> dict:
    """`response` is a pydantic model (JSON), or a map of media type → JSON Schema."""
    if isinstance(response, Mapping):
        return {media: {"schema": _schema(schema, components)} for media, schema in response.items()}
    return {JSON: {"schema": _schema(response, components)}}


def _headers(names: list[str], required: bool) -> dict:
    return {name: {**HEADERS[name], "required": required} for name in names}


def _operation(spec: RouteSpec, components: dict) -> dict:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(spec.path)
    ]
    if spec.query is not None:
        query_schema = spec.query.model_json_schema(ref_template=REF, schema_generator=_Generator)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameters.append(
                {"name": name, "in": "query", "required": name in required, "schema": _not_null(prop)}
            )
    parameters += [{"in": "header", **header} for header in spec.request_headers]
    if spec.method == "PATCH":
        parameters.append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "description": 'Apply the change only to this version (the `ETag`, e.g. `"v3"`); else 412.',
                "schema": {"type": "string"},
            }
        )
    errors = set(spec.errors) | {500}
    idempotent = spec.method == "POST" and bool(spec.roles)
    if idempotent:
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Retry safely: the same key and body replay the first response for 24 hours.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
        errors |= {400, 409, 422}
    success: dict[str, Any] = {"description": spec.summary}
    if spec.response is not None:
        success["content"] = _content(spec.response, components)
    # A name ending in "?" is a header the route sends only sometimes.
    success_headers = _headers([h for h in spec.headers if not h.endswith("?")], required=True)
    success_headers |= _headers([h[:-1] for h in spec.headers if h.endswith("?")], required=False)
    if idempotent:
        success_headers |= _headers(["Idempotent-Replayed"], required=False)
    if success_headers:
        success["headers"] = success_headers
    responses: dict[str, Any] = {str(spec.status): success}
    for status, model, description, *named in spec.also:
        other: dict[str, Any] = {"description": description, "content": _content(model, components)}
        # A 4th member names the headers of that status, if not those of the main one.
        other_headers = success_headers if not named else _headers(list(named[0]), required=True)
        if named and idempotent:
            other_headers |= _headers(["Idempotent-Replayed"], required=False)
        if other_headers:
            other["headers"] = other_headers
        responses[str(status)] = other
    problem = {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}}
    for code in sorted(errors):
        signed = code == 401 and not spec.roles
        error: dict[str, Any] = {"description": SIGNATURE_401 if signed else ERRORS[code], "content": problem}
        error_headers: dict[str, Any] = {}
        if code == 308:
            error_headers["Location"] = {
                **HEADERS["Location"],
                "description": MERGED_LOCATION,
                "required": True,
            }
        if signed:
            error_headers["WWW-Authenticate"] = {**SIGNATURE_CHALLENGE, "required": True}
        elif code == 401:
            error_headers |= _headers(["WWW-Authenticate"], required=True)
        if idempotent and code not in _NEVER_REPLAYED:
            error_headers |= _headers(["Idempotent-Replayed"], required=False)
        if idempotent and code == 409:
            error_headers |= _headers(["Retry-After"], required=False)
        if code in (429, 503):
            error_headers |= _headers(["Retry-After"], required=True)
        if code != 500:
            error_headers |= _headers(list(spec.error_headers), required=True)
        if error_headers:
            error["headers"] = error_headers
        responses[str(code)] = error
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "tags": [spec.path.strip("/").split("/")[0].removesuffix(".json")],
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearerAuth": []}] if spec.roles else [],
        "x-roles": list(spec.roles),
    }
    if spec.description:
        operation["description"] = spec.description
    if spec.body is not None:
        operation["requestBody"] = {
            "required": spec.body_required,
            "content": _content(spec.body, components),
        }
    return operation


def _not_null(schema: dict) -> dict:
    """A query parameter's schema without the `null` an optional model field admits: a query
    string has no null (absent is how a parameter is left out)."""
    branches = [b for b in schema.get("anyOf", ()) if b != {"type": "null"}]
    if "anyOf" not in schema or len(branches) != 1:
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf" and not (k == "default" and v is None)}
    return {**branches[0], **rest}


def document() -> dict:
    """The document (not to be changed by the caller): written once, as pydantic takes ~0.2 s."""
    return _document(len(ROUTES))


@functools.cache
def _document(route_count: int) -> dict:
    components: dict[str, Any] = {}
    _schema(Problem, components)
    paths: dict[str, dict] = {}
    for spec in ROUTES:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "CRM API",
            "version": "1.0.0",
            "description": "Customer profiles and interaction timelines. Errors are RFC 9457 "
            "problem+json. Try it in a browser at `/docs`.",
        },
        # Relative to where this document is served, so a gateway's stage prefix (`/api`) is kept.
        "servers": [{"url": ".", "description": "where this document is served from"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@api_route(bp, "/health", "GET", summary="Liveness", roles=(), response=Health)
def health(call: Call):
    return json_response({"status": "ok"})


@api_route(
    bp,
    "/openapi.json",
    "GET",
    summary="This API's OpenAPI 3.1 document",
    roles=(),
    response={JSON: {"type": "object", "description": "An OpenAPI 3.1 document"}},
)
def openapi(call: Call):
    return json_response(document())
