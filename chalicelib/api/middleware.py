"""HTTP middleware: runs around every request in chalice.test.Client, `chalice local`, the
local stack and Lambda alike."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from chalice import Response

from chalicelib.api.responses import problem
from chalicelib.errors import CrmError, MethodNotAllowed, NotFound, PayloadTooLarge, UnsupportedMediaType
from chalicelib.observability import logger

_CORS_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match, Idempotency-Key",
    # Response headers a browser's script may read; the others are the CORS-safelisted ones.
    "Access-Control-Expose-Headers": "ETag, Location, Idempotent-Replayed, Retry-After, WWW-Authenticate",
    "Access-Control-Max-Age": "600",
}
# Chalice answers some requests itself (unknown method, unsupported media type, an uncaught
# exception) in its own JSON shape; these become problems like every other error.
_CHALICE_ERRORS: dict[int, type[CrmError]] = {
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
}


def _internal_error(path: str) -> Response:
    error = CrmError("The server failed to handle this request; it has been logged.")
    return problem(error, path)


def _as_problem(response: Response, path: str) -> Response:
    if response.status_code < 400:
        return response
    content_type = {k.lower(): v for k, v in (response.headers or {}).items()}.get("content-type", "")
    if "problem+json" in content_type:
        return response
    try:
        body = response.body if isinstance(response.body, dict) else json.loads(response.body or "{}")
        message = body.get("Message") or body.get("message") or "Request failed."
    except (TypeError, ValueError):
        message = "Request failed."
    error_type = _CHALICE_ERRORS.get(response.status_code)
    if error_type is None:
        return _internal_error(path)
    error = error_type(message)
    converted = problem(error, path)
    for name, value in (response.headers or {}).items():
        if name.lower() != "content-type":
            converted.headers[name] = value
    return converted


def http_middleware(allowed_origins: tuple[str, ...], max_body_bytes: int) -> Callable:
    allowed = set(allowed_origins)

    def middleware(event, get_response):
        started = time.perf_counter()
        path = event.context.get("path") or event.path
        # Thread-local: the local server answers requests on threads beside the event pump.
        logger.thread_safe_append_keys(
            request_id=event.context.get("requestId"), method=event.method, route=event.path
        )
        body = event.raw_body if event.method not in ("GET", "DELETE", "OPTIONS") else b""
        if body and len(body) > max_body_bytes:
            response = problem(
                PayloadTooLarge(f"The body is {len(body)} bytes; the limit is {max_body_bytes}."), path
            )
        else:
            try:
                response = _as_problem(get_response(event), path)
            except Exception:
                logger.exception("unhandled error")
                response = _internal_error(path)
        origin = event.headers.get("origin")
        if origin and origin in allowed:
            response.headers.update(
                {"Access-Control-Allow-Origin": origin, "Vary": "Origin", **_CORS_HEADERS}
            )
        logger.info(
            "request",
            extra={
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        logger.thread_safe_remove_keys(["request_id", "method", "route"])
        return response

    return middleware
