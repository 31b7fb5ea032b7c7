"""The OpenAPI 3.1 document, written from the route registry and its pydantic models."""

from __future__ import annotations

import re
from typing import Any

from chalice import Blueprint
from pydantic import BaseModel, TypeAdapter

from chalicelib.api.http import PROBLEM_JSON, ROUTES, Call, RouteSpec, api_route, json_response
from chalicelib.api.schemas import Health, Problem

bp = Blueprint(__name__)

REF = "#/components/schemas/{model}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _schema(model: Any, components: dict) -> dict:
    if isinstance(model, TypeAdapter):
        schema = model.json_schema(ref_template=REF)
    else:
        schema = model.model_json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    if isinstance(model, type) and issubclass(model, BaseModel):
        components[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}
    return schema


def _operation(spec: RouteSpec, components: dict) -> dict:
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(spec.path)
    ]
    if spec.query is not None:
        query_schema = spec.query.model_json_schema(ref_template=REF)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if spec.method == "PATCH":
        parameters.append(
            {"name": "If-Match", "in": "header", "required": False, "schema": {"type": "string"}}
        )
    errors = set(spec.errors)
    if spec.method == "POST" and spec.roles:
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
        success["content"] = {"application/json": {"schema": _schema(spec.response, components)}}
    if spec.headers:
        success["headers"] = {h: {"schema": {"type": "string"}} for h in spec.headers}
    responses: dict[str, Any] = {str(spec.status): success}
    problem_ref = {"$ref": REF.format(model="Problem")}
    for code in sorted(errors):
        responses[str(code)] = {
            "description": f"Error {code} (RFC 9457 problem)",
            "content": {PROBLEM_JSON: {"schema": problem_ref}},
        }
    operation: dict[str, Any] = {
        "operationId": spec.name,
        "summary": spec.summary,
        "parameters": parameters,
        "responses": responses,
        "security": [{"bearerAuth": []}] if spec.roles else [],
        "x-roles": list(spec.roles),
    }
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema(spec.body, components)}},
        }
    return operation


def document() -> dict:
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
            "description": "Customer profiles and interaction timelines. Errors are RFC 9457 problem+json.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }


@api_route(bp, "/health", "GET", summary="Liveness", roles=(), response=Health)
def health(call: Call):
    return json_response({"status": "ok"})


@api_route(bp, "/openapi.json", "GET", summary="This API's OpenAPI 3.1 document", roles=())
def openapi(call: Call):
    return json_response(document())
