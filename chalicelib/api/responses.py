"""How every answer is built: JSON bodies, list pages, and the one mapping from errors to RFC 9457
problem+json responses."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from chalice import Response

from chalicelib.errors import CrmError

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


def problem(error: CrmError, instance: str | None = None) -> Response:
    return Response(
        body=json.dumps(problem_body(error, instance), ensure_ascii=False),
        status_code=error.status,
        headers={"Content-Type": PROBLEM_JSON, **error.headers},
    )


def problem_body(error: CrmError, instance: str | None = None) -> dict[str, Any]:
    """The problem+json object of `error` (RFC 9457)."""
    body: dict[str, Any] = {
        "type": f"urn:problem-type:crm:{error.type_slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    if error.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    body.update(error.extensions)
    return body


def to_json(payload: Any) -> str:
    """A response body's JSON: UTF-8 text (not ASCII escapes), decimals as strings."""
    return json.dumps(payload, ensure_ascii=False, default=_json_default)


def page_response(page: Any, out: Callable[[Any], Any]) -> Response:
    """A list's answer: `{"items", "next_cursor"}`, each item of the page through `out`."""
    return json_response({"items": [out(item) for item in page.items], "next_cursor": page.next_cursor})


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = "" if payload is None else to_json(payload)
    base = {"Content-Type": JSON} if payload is not None else {}
    return Response(body=body, status_code=status, headers={**base, **(headers or {})})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
